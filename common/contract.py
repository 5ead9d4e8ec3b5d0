"""The sync contract's version, and the headers that carry it on every request."""

CONTRACT_VERSION = 1
# Contract versions this build can still serve; an app speaking another one is told to update.
SUPPORTED_CONTRACT_VERSIONS = frozenset({1})

APP_VERSION_HEADER = "X-Gridwalk-App"
CONTRACT_VERSION_HEADER = "X-Gridwalk-Contract"

API_PREFIX = "/api/v1"
