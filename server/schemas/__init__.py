"""Pydantic shapes at the server's edge: the wire's twins (wire.py), checked on every request."""
