"""The sync contract's version, and the headers that carry it on every request.

Negotiation: the app sends the newest contract it speaks in X-Gridwalk-Contract; the server
answers in that contract when it can serve it (and says which in the same header of its answer)
or refuses with 426 and the contract it speaks. No header is contract 1, as the first apps sent.
"""

CONTRACT_VERSION = 2
# Contract versions this build can still serve; an app speaking another one is told to update.
SUPPORTED_CONTRACT_VERSIONS = frozenset({1, 2})
# The first contract whose push bodies and answers are compact (common.compact); the pull is
# the same in both, made small by gzip.
COMPACT_CONTRACT = 2

APP_VERSION_HEADER = "X-Gridwalk-App"
CONTRACT_VERSION_HEADER = "X-Gridwalk-Contract"

API_PREFIX = "/api/v1"
