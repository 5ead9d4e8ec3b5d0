"""The outage board for call-centre agents, and an account's consumption history (申校).

Answers come from what the crews logged: the moment a push lands, the board shows it.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from common.geo import distance_m
from common.numbers import plain
from common.rules.consumption import consumption
from common.rules.restoration import HistoryEstimate, estimate_from_history
from common.wire import iso
from server.audit.exports import SPREADSHEET_BOM, cell
from server.catalog.accounts import GridView, visible_account
from server.core.config import Settings
from server.core.errors import Forbidden, Invalid, NotFound
from server.jobs.dispatch import OPEN_STATES, OUTAGE_KINDS, get_job
from server.jobs.figures import crew_members, crews
from server.models import (
    Account,
    Assignment,
    Cycle,
    Grid,
    Job,
    JobAccount,
    Meter,
    Reading,
    Route,
)

FINISHED = "finished"


def _board_jobs(session: Session, settings: Settings, view: GridView, now: datetime) -> list[Job]:
    """Open outages, and those restored within the keep window (for "restored at 08:06")."""
    restored_since = now - timedelta(hours=settings.outage_restored_keep_hours)
    return list(
        session.exec(
            select(Job)
            .where(
                or_(
                    col(Job.status).in_(OPEN_STATES),
                    and_(col(Job.status) == FINISHED, col(Job.finished_at) >= restored_since),
                ),
                col(Job.kind).in_(OUTAGE_KINDS),
                view.seen(Job.grid_id),
            )
            .order_by(col(Job.reported_at).desc())
        )
    )


def affected_accounts(session: Session, job: Job) -> list[Account]:
    """The accounts an outage cuts off: those it names, its route's, those within its radius."""
    ids = set(session.exec(select(JobAccount.account_id).where(JobAccount.job_id == job.id)))
    if job.area_route_id is not None:
        ids |= set(
            session.exec(select(Meter.account_id).where(Meter.route_id == job.area_route_id))
        )
    if job.area_radius_m is not None and job.lat is not None and job.lon is not None:
        # A box around the circle first (a degree of latitude is 111 km; of longitude, less),
        # then the true distance.
        box = job.area_radius_m / 111_000 / max(math.cos(math.radians(job.lat)), 0.1)
        for account_id, m_lat, m_lon in session.exec(
            select(Meter.account_id, Meter.lat, Meter.lon).where(
                col(Meter.lat).between(job.lat - box, job.lat + box),
                col(Meter.lon).between(job.lon - box, job.lon + box),
            )
        ):
            if distance_m(m_lat, m_lon, job.lat, job.lon) <= job.area_radius_m:
                ids.add(account_id)
    if not ids:
        return []
    return list(
        session.exec(
            select(Account).where(col(Account.id).in_(ids)).order_by(col(Account.account_no))
        )
    )


def _history(
    session: Session, settings: Settings, kind: str, urgency: str
) -> tuple[int, HistoryEstimate | None]:
    """How many past jobs of this kind and urgency there are to go by, and the estimate."""
    rows = session.exec(
        select(Job.reported_at, Job.finished_at)
        .where(
            Job.kind == kind,
            Job.urgency == urgency,
            Job.status == FINISHED,
            col(Job.reported_at).is_not(None),
            col(Job.finished_at).is_not(None),
        )
        .order_by(col(Job.finished_at).desc())
        .limit(settings.outage_history_jobs)
    ).all()
    durations = [
        (finished - reported).total_seconds() / 60
        for reported, finished in rows
        if reported is not None and finished is not None and finished >= reported
    ]
    return len(durations), estimate_from_history(
        durations, min_jobs=settings.outage_history_min_jobs, share=settings.outage_history_share
    )


def _restoration(job: Job, history: tuple[int, HistoryEstimate | None]) -> dict[str, Any]:
    """When power is expected back, and whose word that is: the crew's (or the plan's), or
    similar past repairs'; none with too few of those."""
    if job.status == FINISHED:
        return {"expected_restore_at": None, "etr_source": None, "etr_history": None}
    if job.expected_finish is not None:
        return {
            "expected_restore_at": iso(job.expected_finish),
            "etr_source": "plan" if job.kind == "planned" else "crew",
            "etr_history": None,
        }
    past, estimate = history
    if job.kind == "planned" or job.reported_at is None:
        return {"expected_restore_at": None, "etr_source": None, "etr_history": None}
    if estimate is None:
        return {
            "expected_restore_at": None,
            "etr_source": None,
            "etr_history": {"jobs": past, "enough": False},
        }
    start = job.reported_at
    return {
        "expected_restore_at": iso(start + timedelta(minutes=estimate.median_min)),
        "etr_source": "history",
        "etr_history": {
            "jobs": estimate.jobs,
            "enough": True,
            "median_min": estimate.median_min,
            "low_min": estimate.low_min,
            "high_min": estimate.high_min,
            "share": estimate.share,
            "earliest_at": iso(start + timedelta(minutes=estimate.low_min)),
            "latest_at": iso(start + timedelta(minutes=estimate.high_min)),
        },
    }


def _customer(account: Account | None) -> dict[str, Any] | None:
    if account is None:
        return None
    return {
        "account_no": account.account_no,
        "customer_name": account.customer_name,
        "address": account.address,
    }


def _board_row(
    job: Job,
    crew: list[str],
    members: list[dict[str, Any]],
    affected: int,
    restoration: dict[str, Any],
    customer: Account | None,
    now: datetime,
) -> dict[str, Any]:
    upcoming = job.kind == "planned" and job.planned_start is not None and job.planned_start > now
    restored = job.status == FINISHED
    return {
        "job_id": str(job.id),
        "kind": job.kind,
        "urgency": job.urgency,
        "content": job.content,
        "crew": crew,
        "crew_members": members,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "expected_finish": job.expected_finish.isoformat() if job.expected_finish else None,
        "last_update": job.last_update_at.isoformat() if job.last_update_at else None,
        "status": "restored" if restored else job.status,
        "restored_at": iso(job.finished_at) if restored and job.finished_at else None,
        "address": job.address,
        "reported_at": job.reported_at.isoformat() if job.reported_at else None,
        "planned_start": job.planned_start.isoformat() if job.planned_start else None,
        "upcoming": upcoming,
        "customers_affected": affected,
        "follows_job_id": str(job.follows_job_id) if job.follows_job_id else None,
        "customer": _customer(customer),
        **restoration,
    }


def outages(
    session: Session,
    settings: Settings,
    *,
    view: GridView,
    now: datetime,
    account_no: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    grid: str | None = None,
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Outages covering an account, a point, a grid or the customers an address fragment finds,
    newest first: open ones, planned ones still to come (marked `upcoming`), and those restored
    within the keep window (status `restored`). Only the jobs of the grids `view` sees."""
    asked = sum(x is not None for x in (account_no, grid, address)) + (
        lat is not None or lon is not None
    )
    if asked != 1 or (lat is None) != (lon is None):
        raise Invalid(
            "ask about exactly one of: account_no, address, lat and lon, grid",
            code="invalid_question",
        )
    jobs = _board_jobs(session, settings, view, now)
    customer_of: dict[Any, Account] = {}
    if account_no is not None:
        account = visible_account(session, view, account_no)
        jobs = _covering_account(session, jobs, account)
        customer_of = {j.id: account for j in jobs}
    elif address is not None:
        found = search_customers(session, view, address, limit=settings.outage_address_matches)
        if not found:
            raise NotFound(f"no customer found at {address!r}", code="address_not_found")
        covering: list[Job] = []
        # Each outage is answered once, with the best-ranked customer it cuts off.
        for account in found:
            for job in _covering_account(session, jobs, account):
                if job.id not in customer_of:
                    customer_of[job.id] = account
                    covering.append(job)
        jobs = sorted(covering, key=lambda j: j.reported_at or now, reverse=True)
    elif grid is not None:
        found_grid = session.exec(select(Grid).where(Grid.code == grid)).first()
        if found_grid is None:
            raise NotFound(f"no grid {grid!r}", code="grid_not_found")
        if not view.sees(found_grid.id):
            raise Forbidden(f"grid {grid!r} is not your grid", code="not_your_grid")
        jobs = [j for j in jobs if j.grid_id == found_grid.id]
    else:
        assert lat is not None
        assert lon is not None
        jobs = _covering_point(session, settings, jobs, lat, lon)
    ids = [j.id for j in jobs]
    crew = crews(session, ids)
    members = crew_members(session, ids)
    histories = {
        key: _history(session, settings, *key) for key in {(j.kind, j.urgency) for j in jobs}
    }
    return [
        _board_row(
            j,
            crew.get(j.id, []),
            members.get(j.id, []),
            len(affected_accounts(session, j)),
            _restoration(j, histories[(j.kind, j.urgency)]),
            customer_of.get(j.id),
            now,
        )
        for j in jobs
    ]


def link_to_restored(session: Session, settings: Settings, job: Job, now: datetime) -> None:
    """A fault reported where an outage was restored within the keep window follows that job:
    the crew that restored it is the first to ask why power is off again."""
    if job.kind == "planned":
        return
    view = GridView(every_grid=True)
    restored = [
        j
        for j in _board_jobs(session, settings, view, now)
        if j.status == FINISHED and j.id != job.id
    ]
    if not restored:
        return
    accounts = affected_accounts(session, job)
    covering: list[Job] = []
    for account in accounts:
        covering += _covering_account(session, restored, account)
    if not accounts and job.lat is not None and job.lon is not None:
        covering = _covering_point(session, settings, restored, job.lat, job.lon)
    if covering:
        latest = max(covering, key=lambda j: j.finished_at or now)
        job.follows_job_id = latest.id
        session.add(job)
        session.flush()


def _normal(text: str) -> str:
    """An address as compared: full-width letters and digits made plain (NFKC), no spaces, and
    the province, city and district a caller leaves out taken off the front."""
    return _ADMIN_PREFIX.sub("", _plain(text))


def _plain(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


# 浙江省杭州市上城区…: each part optional, a few Chinese characters ending in its word.
_ADMIN_PREFIX = re.compile(
    r"^(?:[\u4e00-\u9fff]{2,6}?(?:省|自治区))?(?:[\u4e00-\u9fff]{2,4}?市)?"
    r"(?:[\u4e00-\u9fff]{1,5}?(?:区|县))?"
)


def _matches(query: str, text: str) -> bool:
    """`query` is in `text`, and a house number typed whole is not the start of a longer one
    (庆春路36 finds 庆春路36号, not 庆春路360号)."""
    at = text.find(query)
    while at >= 0:
        after = text[at + len(query) : at + len(query) + 1]
        if not (query[-1:].isdigit() and after.isdigit()):
            return True
        at = text.find(query, at + 1)
    return False


def search_customers(session: Session, view: GridView, text: str, *, limit: int) -> list[Account]:
    """Customers by address fragment, street and house number, customer name or account number,
    Chinese first: spacing and the city or district left out do not matter. Exact account
    numbers first, then addresses, then names; only the accounts of the grids `view` sees."""
    query = _normal(text)
    if not query:
        raise Invalid("type part of an address, a name or an account number", code="empty_address")
    plain_query = _plain(text)
    # A first sieve in SQL: every character of the fragment appears (spaces in the stored
    # address cannot hide it); the exact match is then decided here.
    chars = list(dict.fromkeys(c for c in query if not c.isspace()))[:6]
    sieve = [
        or_(
            col(Account.address).icontains(ch, autoescape=True),
            col(Account.customer_name).icontains(ch, autoescape=True),
            col(Account.account_no).icontains(ch, autoescape=True),
        )
        for ch in chars
    ]
    stmt = select(Account).where(*sieve, col(Account.active))
    if not view.every_grid:
        in_grid = (
            select(Meter.account_id)
            .join(Route, col(Route.id) == Meter.route_id)
            .where(view.seen(Route.grid_id))
        )
        stmt = stmt.where(col(Account.id).in_(in_grid))
    ranked: list[tuple[int, str, Account]] = []
    for account in session.exec(stmt.order_by(col(Account.account_no))):
        if account.account_no.lower() == plain_query:
            rank = 0
        elif _matches(query, _normal(account.address)) or _matches(
            plain_query, _plain(account.address)
        ):
            rank = 1
        elif plain_query in _plain(account.customer_name):
            rank = 2
        elif account.account_no.lower().startswith(plain_query):
            rank = 3
        else:
            continue
        ranked.append((rank, account.account_no, account))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [a for _, _, a in ranked[:limit]]


def customers(
    session: Session, settings: Settings, *, view: GridView, text: str
) -> list[dict[str, Any]]:
    """The customers a fragment finds, for the agent to pick the caller from."""
    found = search_customers(session, view, text, limit=settings.outage_address_matches)
    return [c for c in (_customer(a) for a in found) if c is not None]


def affected_customers(
    session: Session, *, view: GridView, job_id: Any
) -> tuple[Job, list[Account]]:
    """An outage's affected customers (with their phones), for the notices a planned outage
    must send ahead. Only a job of a grid `view` sees."""
    job = get_job(session, job_id)
    if not view.sees(job.grid_id):
        raise Forbidden("this job is not in your grid", code="not_your_grid")
    return job, affected_accounts(session, job)


AFFECTED_CSV_COLUMNS = ("account_no", "customer_name", "address", "phone")


def affected_customers_csv(accounts: list[Account]) -> str:
    """The affected customers as CSV, made safe for a spreadsheet as the audit export is."""
    out = io.StringIO(SPREADSHEET_BOM)
    out.seek(0, io.SEEK_END)
    writer = csv.writer(out)
    writer.writerow(AFFECTED_CSV_COLUMNS)
    for a in accounts:
        writer.writerow([cell(a.account_no), cell(a.customer_name), cell(a.address), cell(a.phone)])
    return out.getvalue()


def _covering_account(session: Session, jobs: list[Job], account: Account) -> list[Job]:
    listed = set(session.exec(select(JobAccount.job_id).where(JobAccount.account_id == account.id)))
    meters = list(session.exec(select(Meter).where(Meter.account_id == account.id)))
    routes = {m.route_id for m in meters}
    out = []
    for job in jobs:
        by_radius = (
            job.area_radius_m is not None
            and job.lat is not None
            and job.lon is not None
            and any(distance_m(m.lat, m.lon, job.lat, job.lon) <= job.area_radius_m for m in meters)
        )
        if job.id in listed or job.area_route_id in routes or by_radius:
            out.append(job)
    return out


def _covering_point(
    session: Session, settings: Settings, jobs: list[Job], lat: float, lon: float
) -> list[Job]:
    out = []
    for job in jobs:
        if job.area_radius_m is not None and job.lat is not None and job.lon is not None:
            if distance_m(lat, lon, job.lat, job.lon) <= job.area_radius_m:
                out.append(job)
            continue
        # A job cutting off accounts (or a route) covers the point if one of their meters is
        # where the caller is.
        meters = session.exec(
            select(Meter.lat, Meter.lon)
            .join(JobAccount, col(JobAccount.account_id) == Meter.account_id)
            .where(JobAccount.job_id == job.id)
        ).all()
        if job.area_route_id is not None:
            meters = [
                *meters,
                *session.exec(
                    select(Meter.lat, Meter.lon).where(Meter.route_id == job.area_route_id)
                ),
            ]
        if any(
            distance_m(lat, lon, m_lat, m_lon) <= settings.outage_point_match_m
            for m_lat, m_lon in meters
        ):
            out.append(job)
    return out


def consumption_history(session: Session, *, view: GridView, account_no: str) -> dict[str, Any]:
    """An account's consumption per cycle, from its readings: what an agent looks at first when
    a customer doubts a bill or a meter (申校). Only an account of a grid `view` sees."""
    account = visible_account(session, view, account_no)
    meters = []
    for meter in session.exec(select(Meter).where(Meter.account_id == account.id)):
        rows = session.exec(
            select(Reading, Cycle.code)
            .join(Assignment, col(Assignment.id) == Reading.assignment_id)
            .join(Cycle, col(Cycle.id) == Assignment.cycle_id)
            .where(Reading.meter_id == meter.id, col(Reading.value).is_not(None))
            .order_by(col(Reading.read_at))
        ).all()
        # The latest reading of each cycle counts (a re-read supersedes the first).
        by_cycle: dict[str, Reading] = {}
        for reading, cycle in rows:
            by_cycle[cycle] = reading
        history = []
        # The billing system's last reading is where the first cycle here starts from.
        previous: Decimal | None = meter.last_reading
        previous_at: datetime | None = meter.last_read_at
        first = min((r.read_at for r in by_cycle.values()), default=None)
        if previous_at is not None and first is not None and previous_at >= first:
            previous, previous_at = None, None
        for cycle, reading in sorted(by_cycle.items(), key=lambda kv: kv[1].read_at):
            assert reading.value is not None
            used = (
                consumption(
                    reading.value,
                    previous,
                    meter.digits,
                    meter.multiplier,
                    expected_high=meter.expected_high,
                )
                if previous is not None
                else None
            )
            days = (reading.read_at - previous_at).total_seconds() / 86400 if previous_at else None
            history.append(
                {
                    "cycle": cycle,
                    "read_at": reading.read_at.isoformat(),
                    "value": format(reading.value.normalize(), "f"),
                    "consumption_kwh": format(used.normalize(), "f") if used is not None else None,
                    "kwh_per_day": round(float(used) / days, 2)
                    if used is not None and days
                    else None,
                }
            )
            previous, previous_at = reading.value, reading.read_at
        meters.append(
            {
                "meter_no": meter.meter_no,
                "digits": meter.digits,
                "multiplier": format(meter.multiplier.normalize(), "f"),
                "expected_low": plain(meter.expected_low),
                "expected_high": plain(meter.expected_high),
                "history": history,
            }
        )
    return {
        "account_no": account.account_no,
        "customer_name": account.customer_name,
        "address": account.address,
        "meters": meters,
    }
