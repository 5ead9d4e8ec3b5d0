"""The supervisor's route audit (稽查): progress, readings and flags, reviews, re-read orders,
and the exports (GPX, GeoJSON, CSV). Not the admin log of who did what (core.changes)."""
