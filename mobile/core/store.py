"""The device's own database: pulled routes and meters, drafts, confirmed readings, skips, the
GPS track, job events, and the outbox state of each record.

Every write is one SQLite transaction (WAL, synchronous=FULL): killing the app at any instant
leaves either the whole write or none of it. A confirmed reading is locked by triggers, so no
code path on the device can change it either. Record ids are UUIDs made here, so a record pushed
twice (the app died before it saw the answer) is a `duplicate` on the server, never a second copy.
"""

from __future__ import annotations

from mobile.core.outbox import Outbox
from mobile.core.pulled import PulledWork
from mobile.core.records import FieldRecords


class Store(PulledWork, FieldRecords, Outbox):
    """The device database. Thread-safe: the sync thread and the UI share one connection.

    One class over one connection, its parts kept by what they hold: device_db (connection,
    transactions, settings), pulled (the work the server sent), records (what is recorded here),
    outbox (what goes to the server)."""
