"""The tamper-evident chain: every reading received and every admin act, hash-chained.

Each link holds the hash of what it records (a reading's `content_hash`, an admin log row's
`admin_log_hash`) and its own hash, sha256(previous link's hash + canonical JSON of the link),
so changing, removing or inserting anything behind the app's back breaks the chain from there
on; `gridwalk verify` (server.core.integrity) finds where.

Links are added in one place, by session hooks, like the change counter's stamp: no service
can forget to. A flush notes the new readings and admin log rows; the commit appends their links
as its last write, in the same transaction, so a rolled-back request (or item savepoint) leaves
none. Taking the chain's lock last, just before COMMIT, keeps its hold short (one lock for every
writer) and means no writer waits on another lock while holding it: it can be in no deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_text  # json.dumps's own
from typing import Any

import orjson
from sqlalchemy import event, insert, inspect, text
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction, UOWTransaction

from common import clock
from common.wire import iso
from server.models import AdminLog, LedgerEntry, Reading

# The hash the first link follows.
GENESIS = "0" * 64

_PENDING = "ledger_pending"


def canonical_json(content: Any) -> str:
    """One spelling of a JSON value: keys sorted, no spaces, ASCII."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"))


def entry_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """A link's hash: sha256 of the previous link's hash followed by the link's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


def entry_content(entry: LedgerEntry) -> dict[str, Any]:
    """What a link's hash covers: everything in it but the two hashes of the chain."""
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "action": entry.action,
        "subject": entry.subject,
        "subject_id": entry.subject_id,
        "content_hash": entry.content_hash,
    }


def admin_log_hash(
    *,
    id: int,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: str,
    detail: Any,
) -> str:
    """The content of an admin log row, as its ledger link holds it."""
    return hashlib.sha256(
        canonical_json(
            {
                "id": id,
                "at": iso(at),
                "actor_id": actor_id,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "detail": detail,
            }
        ).encode()
    ).hexdigest()


def admin_log_row_hash(log: AdminLog) -> str:
    assert log.id is not None
    return admin_log_hash(
        id=log.id,
        at=log.at,
        actor_id=log.actor_id,
        action=log.action,
        object_type=log.object_type,
        object_id=log.object_id,
        detail=log.detail,
    )


@dataclass(frozen=True)
class Link:
    """What a new link records: the act, what it is about, and that thing's content hash."""

    action: str
    subject: str
    subject_id: str
    content_hash: str


def link_of(obj: Reading | AdminLog) -> Link:
    if isinstance(obj, Reading):
        return Link("reading.received", "reading", str(obj.id), obj.content_hash)
    return Link(obj.action, "admin_log", str(obj.id), admin_log_row_hash(obj))


def append(session: OrmSession, links: Sequence[Link]) -> None:
    """Append links to the chain in this transaction (its lock is held until it ends)."""
    if not links:
        return
    conn = session.connection()
    now = clock.now()
    at = iso(now)
    # Each link's canonical JSON but its number, made before the chain's lock is taken: under
    # the lock only the numbers are filled in and the hashes chained (sha256 in C, microseconds
    # a link), so that concurrent pushes queue on it for as short a time as can be. The keys
    # sort as action, at, content_hash, seq, subject, subject_id, and each string is written
    # as json.dumps writes it: the text is exactly canonical_json of entry_content, which
    # `gridwalk verify` re-hashes (a third of the time of canonical_json's two calls a link).
    at_json = _json_text(at)
    parts = [
        (
            f'{{"action":{_json_text(link.action)},"at":{at_json},'
            f'"content_hash":{_json_text(link.content_hash)},"seq":',
            f',"subject":{_json_text(link.subject)},"subject_id":{_json_text(link.subject_id)}}}',
        )
        for link in links
    ]
    # The upsert takes the head's row lock (or, on SQLite, the write lock BEGIN IMMEDIATE
    # holds already) and reserves the numbers; the head's hash is still the last link's.
    # A head missing (a test's TRUNCATE) is a chain starting anew.
    last_seq, prev = conn.execute(
        text(
            "INSERT INTO ledger_head (id, seq, hash) VALUES (1, :n, :genesis) "
            "ON CONFLICT (id) DO UPDATE SET seq = ledger_head.seq + :n RETURNING seq, hash"
        ),
        {"n": len(links), "genesis": GENESIS},
    ).one()
    first = int(last_seq) - len(links) + 1
    head_hash = prev
    hashes = []
    for seq, (head, tail) in zip(range(first, first + len(links)), parts, strict=True):
        prev = hashlib.sha256(f"{prev}{head}{seq}{tail}".encode()).hexdigest()
        hashes.append(prev)
    if conn.dialect.name == "postgresql":
        _insert_postgresql(conn, first, now, links, hashes, head_hash)
        return
    conn.execute(
        insert(LedgerEntry.__table__),  # type: ignore[attr-defined]
        [
            {
                "seq": first + i,
                "at": now,
                "action": link.action,
                "subject": link.subject,
                "subject_id": link.subject_id,
                "content_hash": link.content_hash,
                "prev_hash": before,
                "hash": hash_,
            }
            for i, (link, before, hash_) in enumerate(
                zip(links, [head_hash, *hashes[:-1]], hashes, strict=True)
            )
        ],
    )
    conn.execute(text("UPDATE ledger_head SET hash = :hash WHERE id = 1"), {"hash": prev})


# Every writer waits for the chain's lock while one holds it: on PostgreSQL the links and the
# head's new hash go in one short statement, the numbers and each link's previous hash made by
# the database, so that the lock's holder sends as little as it can (db.insert_dicts).
_INSERT_POSTGRESQL = (
    "WITH added AS (INSERT INTO ledger "
    "(seq, at, action, subject, subject_id, content_hash, prev_hash, hash) "
    "SELECT %s::bigint + n - 1, %s::timestamptz, action, subject, subject_id, content_hash, "
    "coalesce(lag(hash) OVER (ORDER BY n), %s::varchar), hash "
    "FROM ROWS FROM (json_to_recordset(%s::json) AS (action varchar, subject varchar, "
    "subject_id varchar, content_hash varchar, hash varchar)) WITH ORDINALITY "
    "AS link(action, subject, subject_id, content_hash, hash, n)) "
    "UPDATE ledger_head SET hash = %s::varchar WHERE id = 1"
)


def _insert_postgresql(
    conn: Any, first: int, at: datetime, links: Sequence[Link], hashes: list[str], head_hash: str
) -> None:
    """The links numbered from `first`, each hash given, chained after the head's `head_hash`.
    The links travel as one JSON text (db.insert_dicts: arrays of text cost psycopg a step of
    Python per string)."""
    payload = orjson.dumps(
        [
            {
                "action": link.action,
                "subject": link.subject,
                "subject_id": link.subject_id,
                "content_hash": link.content_hash,
                "hash": hash_,
            }
            for link, hash_ in zip(links, hashes, strict=True)
        ]
    ).decode()
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(_INSERT_POSTGRESQL, [first, at, head_hash, payload, hashes[-1]])
    finally:
        cursor.close()


def owe(session: OrmSession, links: Sequence[Link]) -> None:
    """Links owed at commit for rows a bulk statement stored past the ORM (the push's readings).
    Noted once their statement succeeded, outside any savepoint that could still undo it."""
    if links:
        session.info.setdefault(_PENDING, []).extend(links)


@event.listens_for(OrmSession, "after_flush")
def _note_chained_rows(session: OrmSession, _flush: UOWTransaction) -> None:
    """A flush that stored readings or admin log rows: their links are owed at commit."""
    new = [o for o in session.new if isinstance(o, Reading | AdminLog)]
    if new:
        session.info.setdefault(_PENDING, []).extend(new)


@event.listens_for(OrmSession, "before_commit")
def _append_owed_links(session: OrmSession) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its rows are owed at the real commit
    session.flush()  # what is still pending first: the chain's lock is the last one taken
    owed = session.info.pop(_PENDING, [])
    # A row whose savepoint rolled back was expunged: it was never stored, it gets no link.
    append(
        session,
        [
            o if isinstance(o, Link) else link_of(o)
            for o in owed
            if isinstance(o, Link) or inspect(o).persistent
        ],
    )


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_owed_links(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction ended (a rollback): nothing owed
        session.info.pop(_PENDING, None)
