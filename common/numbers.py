"""Numbers as people write them, the same on the handheld's screens and the server's answers."""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal | None) -> str | None:
    """1225, 12.5 — not 1225.000 (PostgreSQL's scale) or 1.2E+3; None stays None."""
    return None if value is None else format(value.normalize(), "f")
