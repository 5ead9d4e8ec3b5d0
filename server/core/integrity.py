"""`gridwalk verify`: the ledger walked link by link, every reading and admin log row re-hashed.

What it finds is named: the first link whose hash no longer follows (changed, removed or
inserted links; a chain cut short of its head), every reading whose content no longer matches
its hash or the hash its link holds, every reading or log row without a link, and every link
whose reading or log row is gone. It reads only; it holds one hash per link in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from server.core.ledger import GENESIS, admin_log_row_hash, entry_content, entry_hash
from server.models import AdminLog, LedgerEntry, LedgerHead, Reading
from server.sync.records import stored_reading_hash

_BATCH = 1000


@dataclass
class Verdict:
    """What a walk found; intact when `problems` is empty."""

    entries: int = 0
    readings: int = 0
    admin_logs: int = 0
    first_broken_entry: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(session: Session) -> Verdict:
    """Walk the chain and re-hash every reading and admin log row against it."""
    verdict = Verdict()
    # subject -> subject id -> (link's seq, content hash the link holds)
    links: dict[str, dict[str, tuple[int, str]]] = {"reading": {}, "admin_log": {}}
    prev_seq, prev_hash = 0, GENESIS
    chain = session.exec(
        select(LedgerEntry).order_by(col(LedgerEntry.seq)).execution_options(yield_per=_BATCH)
    )
    for entry in chain:
        verdict.entries += 1
        if verdict.first_broken_entry is None:
            why = _break(entry, prev_seq, prev_hash)
            if why:
                verdict.first_broken_entry = entry.seq
                verdict.problems.append(f"ledger entry {entry.seq}: {why} (first broken entry)")
        prev_seq, prev_hash = entry.seq, entry.hash
        known = links.get(entry.subject)
        if known is None:
            verdict.problems.append(f"ledger entry {entry.seq}: unknown subject {entry.subject}")
        else:
            known[entry.subject_id] = (entry.seq, entry.content_hash)
    head = session.get(LedgerHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if verdict.first_broken_entry is None and (head_seq, head_hash) != (prev_seq, prev_hash):
        verdict.first_broken_entry = prev_seq + 1
        verdict.problems.append(
            f"ledger entry {prev_seq + 1}: the chain ends at entry {prev_seq} but its head "
            f"names entry {head_seq}: entries were removed from its end (first broken entry)"
        )

    readings = links["reading"]
    for reading in session.exec(
        select(Reading).order_by(col(Reading.id)).execution_options(yield_per=_BATCH)
    ):
        verdict.readings += 1
        name = f"reading {reading.id}"
        if stored_reading_hash(reading) != reading.content_hash:
            verdict.problems.append(f"{name}: its content no longer matches its hash")
        link = readings.pop(str(reading.id), None)
        if link is None:
            verdict.problems.append(f"{name}: not in the ledger")
        elif link[1] != reading.content_hash:
            verdict.problems.append(f"{name}: its hash is not the one ledger entry {link[0]} holds")
    for subject_id, (seq, _hash) in readings.items():
        verdict.problems.append(f"ledger entry {seq}: reading {subject_id} is missing")

    logs = links["admin_log"]
    for log in session.exec(
        select(AdminLog).order_by(col(AdminLog.id)).execution_options(yield_per=_BATCH)
    ):
        verdict.admin_logs += 1
        link = logs.pop(str(log.id), None)
        if link is None:
            verdict.problems.append(f"admin log entry {log.id}: not in the ledger")
        elif link[1] != admin_log_row_hash(log):
            verdict.problems.append(
                f"admin log entry {log.id}: its content no longer matches ledger entry {link[0]}"
            )
    for subject_id, (seq, _hash) in logs.items():
        verdict.problems.append(f"ledger entry {seq}: admin log entry {subject_id} is missing")
    return verdict


def _break(entry: LedgerEntry, prev_seq: int, prev_hash: str) -> str | None:
    """Why this link does not follow the one before, or None."""
    if entry.seq != prev_seq + 1:
        return f"follows entry {prev_seq}: entries are missing or renumbered"
    if entry.prev_hash != prev_hash:
        return f"does not carry entry {prev_seq}'s hash"
    if entry.hash != entry_hash(entry.prev_hash, entry_content(entry)):
        return "its content no longer matches its hash"
    return None
