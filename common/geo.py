"""Geo maths shared by the handheld and the server: distances on the WGS-84 ellipsoid.

Route validation measures tens of thousands of short distances per route-day (track points
against meters), so `distance_m` uses a closed form instead of geopy's iterative geodesic: the
local flat-earth approximation with the ellipsoid's radii of curvature at the mean latitude.
Against geopy.distance.geodesic its relative error is below 1e-8 up to 1 km and below 1e-4 up to
100 km (tests/common/test_validation.py checks it); farther than that it hands over to geopy, where
the approximation would drift and the call is rare.
"""

from __future__ import annotations

import math

from geopy.distance import geodesic

WGS84_A = 6_378_137.0  # semi-major axis, metres
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)  # first eccentricity squared
FLAT_LIMIT_M = 100_000.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The geodesic distance in metres between two WGS-84 points given in degrees."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dlon = math.radians(lon2 - lon1)
    dlon = (dlon + math.pi) % (2 * math.pi) - math.pi  # across the antimeridian
    phi_m = (phi1 + phi2) / 2
    s = math.sin(phi_m)
    w = 1 - WGS84_E2 * s * s
    n = WGS84_A / math.sqrt(w)  # prime-vertical radius of curvature
    m = n * (1 - WGS84_E2) / w  # meridional radius of curvature
    d = math.hypot(n * math.cos(phi_m) * dlon, m * (phi2 - phi1))
    if d <= FLAT_LIMIT_M:
        return d
    return float(geodesic((lat1, lon1), (lat2, lon2)).meters)


# More than any degree of latitude or longitude is long, on the ellipsoid (111,694 m: a degree
# of latitude at the poles), with room for rounding.
METRES_PER_DEGREE_MAX = 111_700.0


def surely_within(lat1: float, lon1: float, lat2: float, lon2: float, metres: float) -> bool:
    """Whether two points are surely at most `metres` apart, by a bound that costs two
    subtractions (the way north, then east, is longer than the way between): True only if
    distance_m would say so too; False says nothing. Rules that compare thousands of
    consecutive track points with a threshold measure only the steps it cannot clear."""
    return (abs(lat2 - lat1) + abs(lon2 - lon1)) * METRES_PER_DEGREE_MAX <= metres


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point `north_m` metres north and `east_m` metres east of (lat, lon), for short moves."""
    phi = math.radians(lat)
    s = math.sin(phi)
    w = 1 - WGS84_E2 * s * s
    n = WGS84_A / math.sqrt(w)
    m = n * (1 - WGS84_E2) / w
    return (
        lat + math.degrees(north_m / m),
        lon + math.degrees(east_m / (n * math.cos(phi))),
    )
