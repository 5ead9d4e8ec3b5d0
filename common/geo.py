"""Distances on the Earth, for presence, speed and distance walked."""

from __future__ import annotations

import math

# The WGS-84 mean radius: haversine with it stays within 0.5 % of the geodesic (geopy's
# Karney) at the distances of a reading route, and is a hundred times faster.
EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
