"""The sync contract's server side: the pull (what changed for a user since a cursor) and the
push (a device's outbox, stored idempotently, item by item)."""
