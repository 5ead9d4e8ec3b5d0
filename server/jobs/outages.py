"""The outage board for call-centre agents, and an account's consumption history (申校).

Answers come from what the crews logged: the moment a push lands, the board shows it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from common.geo import distance_m
from common.numbers import plain
from common.rules.consumption import consumption
from server.catalog.accounts import GridView, visible_account
from server.core.config import Settings
from server.core.errors import Forbidden, Invalid, NotFound
from server.jobs.dispatch import OPEN_STATES, OUTAGE_KINDS
from server.jobs.figures import crews
from server.models import Account, Assignment, Cycle, Grid, Job, JobAccount, Meter, Reading


def _open_outages(session: Session, view: GridView) -> list[Job]:
    return list(
        session.exec(
            select(Job)
            .where(
                col(Job.status).in_(OPEN_STATES),
                col(Job.kind).in_(OUTAGE_KINDS),
                view.seen(Job.grid_id),
            )
            .order_by(col(Job.reported_at).desc())
        )
    )


def _board_row(job: Job, crew: list[str], now: datetime) -> dict[str, Any]:
    upcoming = job.kind == "planned" and job.planned_start is not None and job.planned_start > now
    return {
        "job_id": str(job.id),
        "kind": job.kind,
        "urgency": job.urgency,
        "content": job.content,
        "crew": crew,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "expected_finish": job.expected_finish.isoformat() if job.expected_finish else None,
        "last_update": job.last_update_at.isoformat() if job.last_update_at else None,
        "status": job.status,
        "address": job.address,
        "reported_at": job.reported_at.isoformat() if job.reported_at else None,
        "planned_start": job.planned_start.isoformat() if job.planned_start else None,
        "upcoming": upcoming,
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
) -> list[dict[str, Any]]:
    """Open outages covering an account, a point or a grid, newest first; planned ones still to
    come are included and marked `upcoming`. Only the jobs of the grids `view` sees."""
    asked = sum(x is not None for x in (account_no, grid)) + (lat is not None or lon is not None)
    if asked != 1 or (lat is None) != (lon is None):
        raise Invalid(
            "ask about exactly one of: account_no, lat and lon, grid", code="invalid_question"
        )
    jobs = _open_outages(session, view)
    if account_no is not None:
        jobs = _covering_account(session, jobs, visible_account(session, view, account_no))
    elif grid is not None:
        found = session.exec(select(Grid).where(Grid.code == grid)).first()
        if found is None:
            raise NotFound(f"no grid {grid!r}", code="grid_not_found")
        if not view.sees(found.id):
            raise Forbidden(f"grid {grid!r} is not your grid", code="not_your_grid")
        jobs = [j for j in jobs if j.grid_id == found.id]
    else:
        assert lat is not None
        assert lon is not None
        jobs = _covering_point(session, settings, jobs, lat, lon)
    crew = crews(session, [j.id for j in jobs])
    return [_board_row(j, crew.get(j.id, []), now) for j in jobs]


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
