"""Gridwalk server: routes and jobs out, readings and tracks in, audit for supervisors."""
