"""A cycle's readings ready to bill, as a CSV file for billing systems that take files: UTF-8 by
default or GBK, safe to open in a spreadsheet, with a control total line at the end."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Literal

from sqlmodel import Session, col, select

from server.audit.exports import cell
from server.core.errors import Invalid, NotFound
from server.models import Account, BillingFeedItem, Cycle

Encoding = Literal["utf-8", "gbk"]

COLUMNS = (
    "reading_id",
    "account_no",
    "customer_name",
    "address",
    "meter_no",
    "cycle",
    "read_at",
    "previous",
    "current",
    "consumption_kwh",
    "supersedes",
)
# The last line: how many readings and their kWh, for the billing system to check it got all.
TOTAL = "TOTAL"


def cycle_csv(session: Session, *, cycle: str, encoding: Encoding) -> bytes:
    """The cycle's feed items, each account's latest (a re-read replaces what it supersedes),
    in feed order; then the control total."""
    if session.exec(select(Cycle.id).where(Cycle.code == cycle)).first() is None:
        raise NotFound(f"no cycle {cycle!r}", code="cycle_not_found")
    items = list(
        session.exec(
            select(BillingFeedItem, Account)
            .join(Account, col(Account.account_no) == BillingFeedItem.account_no)
            .where(BillingFeedItem.cycle == cycle)
            .order_by(col(BillingFeedItem.feed_seq), col(BillingFeedItem.id))
        )
    )
    replaced = {i.supersedes for i, _ in items if i.supersedes is not None}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count, kwh = 0, Decimal(0)
    for item, account in items:
        if item.reading_id in replaced:
            continue
        count += 1
        kwh += item.consumption_kwh
        writer.writerow(
            [
                item.reading_id,
                cell(item.account_no),
                cell(account.customer_name),
                cell(account.address),
                cell(item.meter_no),
                cell(item.cycle),
                item.read_at.isoformat(),
                item.previous,
                item.current,
                item.consumption_kwh,
                item.supersedes or "",
            ]
        )
    writer.writerow([TOTAL, count, kwh])
    text = out.getvalue()
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise Invalid(
            f"the file holds {bad!r}, which GBK cannot write: ask for encoding=utf-8",
            code="not_encodable",
        ) from None
