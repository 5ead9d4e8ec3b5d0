"""What the audit, jobs and admin routes answer, declared so that /openapi.json documents every
answer and a route that drifts from its shape fails its tests (extra keys are refused).

Times are ISO 8601 strings and registers plain decimal strings, as the services write them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: a sentence, a stable code, per-field or per-row errors where a
    form or a file held several, and what else the code needs (426: the server's contract)."""

    model_config = ConfigDict(extra="allow")

    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


_MEANING = {
    400: "The body cannot be read (not UTF-8, not JSON, bad gzip, a broken form)",
    401: "No valid access token (expired: refresh it), or a bad login",
    403: "The caller's role or grid may not do this",
    404: "What the path names does not exist",
    409: "It conflicts with what is already there (already closed, already exists)",
    413: "The body or file is too large",
    415: "A Content-Encoding other than gzip",
    422: "A field is missing or wrong: each one is named",
    426: "The app speaks a contract or version this server no longer serves: update it",
    429: "Too many attempts: try again after the Retry-After header's seconds",
    503: "Busy, or the database is out of reach: try again after Retry-After seconds",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a group of routes can give, for /openapi.json."""
    return {s: {"model": ErrorBody, "description": _MEANING[s]} for s in statuses}


def file_answer(
    media_type: str, description: str, model: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a route that sends a file of `media_type` (GPX, CSV, GeoJSON).

    Such a route takes `response_class=Response`, whose media type is none: FastAPI would
    otherwise document the route's errors under the file's media type too, though they are
    JSON (ErrorBody) like every other error. `model` must also be the route's response_model,
    which puts its schema in /openapi.json's components."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"} if model else {"type": "string"}
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


# ------------------------------------------------------------------------ the route audit


class SeverityCounts(Answer):
    info: int
    warn: int
    fail: int


class Verdict(Answer):
    """The assignment's day in one line (common/rules/verdict.py)."""

    code: Literal["nothing", "no_track", "stayed", "walked"]
    params: dict[str, Any] = PydanticField(description="The numbers the sentence is made of")
    message: str = PydanticField(description="The sentence in the caller's language")


class AssignmentProgress(Answer):
    id: int
    route_code: str
    route_name: str
    cycle: str
    reader: str
    window_start: str
    window_end: str
    status: str
    meters: int
    read: int
    skipped: int
    missing: int = PydanticField(description="Meters with neither a reading nor a skip")
    window_closed: bool = PydanticField(
        description="Closed or past its last day: an unread meter is missed, not just not read yet"
    )
    flagged: SeverityCounts
    meters_flagged: int
    first_read_at: str | None
    last_read_at: str | None
    distance_walked_m: int | None = PydanticField(
        description="Along the cleaned track, as the validation last measured it (None: not "
        "validated yet)"
    )
    verdict: Verdict | None = PydanticField(
        description="As the validation last judged the day (None: not validated yet, see "
        "validation_pending)"
    )
    validation_pending: bool = PydanticField(
        description="New data waits to be validated: the flags may change within seconds"
    )
    validation_pending_since: str | None = PydanticField(
        description="When the oldest data not yet validated arrived (None: none waits)"
    )


class FlagOut(Answer):
    id: int | None
    code: str
    severity: str
    message: str = PydanticField(
        description="The flag's sentence in the caller's language (Accept-Language)"
    )
    params: dict[str, Any] | None = PydanticField(
        description="The numbers and names the sentence is made of (None: a flag made by hand)"
    )
    reading_id: str | None
    meter_id: int | None
    review: str | None
    review_note: str | None
    reviewed_at: str | None
    reviewed_by: str | None


class FixOut(Answer):
    lat: float
    lon: float
    accuracy_m: float | None
    fix_time: str | None
    provider: str | None
    mock: bool | None
    distance_to_meter_m: float
    exactly_on_meter: bool = PydanticField(
        description="The fix sits on the meter's own coordinates: typed or copied, not measured"
    )


class ReadingOut(Answer):
    id: str
    meter_id: int
    value: str | None
    skip_code: str | None
    note: str | None
    read_at: str
    confirmed_at: str
    received_at: str
    fix: FixOut | None
    reread_of: str | None
    supersedes: str | None
    superseded_by: str | None
    state: Literal["read", "skipped", "disputed"] = PydanticField(
        description="disputed: a supervisor upheld one of its flags (the reading stays on record)"
    )
    disputed: bool
    flags: list[FlagOut]


class LearnedPositionOut(Answer):
    lat: float
    lon: float
    readings: int = PydanticField(description="How many past honest readings it is learned from")
    spread_m: float = PydanticField(
        description="The median distance of those readings' fixes from it, in metres"
    )


class MeterOnMap(Answer):
    id: int | None
    meter_no: str
    account_no: str
    customer_name: str
    address: str
    lat: float
    lon: float
    sequence: int
    last_reading: str | None
    state: Literal["read", "skipped", "disputed", "not_read_yet", "missed", "flagged"] = (
        PydanticField(
            description="flagged: an open warn or fail; not_read_yet while the window is open, "
            "missed after it closed"
        )
    )
    position_uncertainty_m: float | None = PydanticField(
        description="How far the mapped position may be off, as the meter import says"
    )
    learned_position: LearnedPositionOut | None = PydanticField(
        description="Where the meter probably is, from the fixes of past cycles' readings that "
        "raised no presence flag (None: fewer than the setting learned_min_readings)"
    )


class TrackPointOut(Answer):
    t: str
    lat: float
    lon: float
    accuracy_m: float | None
    mock: bool


class RereadOrderBrief(Answer):
    id: str
    meter_id: int
    status: str
    reason: str
    reading_id: str | None


class RereadOrdered(RereadOrderBrief):
    assignment_id: int


class AssignmentDetail(Answer):
    assignment: AssignmentProgress
    meters: list[MeterOnMap]
    readings: list[ReadingOut]
    track: list[TrackPointOut]
    flags: list[FlagOut]
    reread_orders: list[RereadOrderBrief]


class TimelinePoint(Answer):
    t: str
    meter_id: int | None = PydanticField(description="The meter of the next reading taken")
    distance_m: float | None = PydanticField(
        description="From this cleaned track point to that meter (None after the last reading)"
    )
    speed_kmh: float | None = PydanticField(
        description="From the point before (None: the first, or the first after a break)"
    )
    break_before: bool = PydanticField(
        description="A pause in the track (server.audit.timeline.BREAK_S) precedes this point: "
        "the handheld off, or the night between two days of the window"
    )


class TimelineReading(Answer):
    reading_id: str
    t: str
    meter_id: int
    distance_m: float | None = PydanticField(
        description="From the track point nearest in time to the meter (None: no point within "
        "the rules' track window)"
    )


class Timeline(Answer):
    """The day over time: distance from the cleaned track to the meter being read, speed, and
    the readings."""

    points: list[TimelinePoint]
    readings: list[TimelineReading]


class GeoFeature(Answer):
    type: Literal["Feature"]
    geometry: dict[str, Any]  # a LineString (the track) or a Point (a meter)
    properties: dict[str, Any]


class GeoTrackExport(Answer):
    """The track and the meters with their state, as a GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"]
    features: list[GeoFeature]


# ------------------------------------------------------------------------ jobs and outages


class Position(Answer):
    lat: float
    lon: float


class NoResponseCommitment(Answer):
    """A planned outage: no response commitment, measured against its own plan."""

    applies: Literal[False]


class ResponseFigures(Answer):
    """Report to arrival and to restoration against the targets for the job's urgency."""

    applies: Literal[True]
    reported_at: str
    response_target_min: float
    restore_target_min: float
    respond_by: str
    restore_by: str
    response_min: float | None
    restoration_min: float | None
    response_met: bool | None
    restore_met: bool | None


class JobArea(Answer):
    accounts: list[str]
    radius_m: float | None
    route_id: int | None


class JobEventOut(Answer):
    id: str
    kind: str
    at: str
    received_at: str
    by: str | None
    device_id: str | None
    expected_finish: str | None
    content: str | None
    crew: list[str] | None
    note: str | None
    fix: Position | None
    meter_check: dict[str, Any] | None


class LastPosition(Answer):
    lat: float
    lon: float
    at: str


class CrewMember(Answer):
    username: str
    full_name: str
    phone: str | None
    last_position: LastPosition | None = PydanticField(
        description="The latest point of their handheld's track, and when"
    )


class Customer(Answer):
    account_no: str
    customer_name: str
    address: str


class JobDetail(Answer):
    id: str
    kind: str
    urgency: str
    status: str
    content: str
    crew: list[str]
    lat: float | None
    lon: float | None
    address: str | None
    expected_finish: str | None
    started_at: str | None
    finished_at: str | None
    planned_start: str | None
    accounts: list[str]
    grid: str | None
    reported_at: str | None
    dispatched_at: str | None
    cancelled_at: str | None
    last_update: str | None
    start_position: Position | None
    finish_position: Position | None
    result_note: str | None
    meter_check: dict[str, Any] | None
    crew_members: list[CrewMember]
    follows_job_id: str | None = PydanticField(
        description="A fault reported again after this earlier job restored power there"
    )
    area: JobArea
    response: ResponseFigures | NoResponseCommitment
    events: list[JobEventOut]


class OpenJob(Answer):
    job_id: str
    kind: str
    urgency: str
    status: str
    content: str
    crew: list[str]
    address: str | None
    reported_at: str | None
    expected_finish: str | None
    next_due: str | None
    overdue: bool
    response: ResponseFigures | NoResponseCommitment


class HistoryEstimateOut(Answer):
    jobs: int = PydanticField(description="Past finished jobs of the same kind and urgency")
    enough: bool = PydanticField(description="False: too few to estimate from")
    median_min: float | None = None
    low_min: float | None = None
    high_min: float | None = None
    share: float | None = PydanticField(default=None, description="low-high holds this share")
    earliest_at: str | None = None
    latest_at: str | None = None


class OutageRow(Answer):
    job_id: str
    kind: str
    urgency: str
    content: str
    crew: list[str]
    crew_members: list[CrewMember]
    started_at: str | None
    expected_finish: str | None
    last_update: str | None
    status: str = PydanticField(description="the job's status, or restored once finished")
    restored_at: str | None
    address: str | None
    reported_at: str | None
    planned_start: str | None
    upcoming: bool
    customers_affected: int = PydanticField(description="Accounts the outage cuts off")
    follows_job_id: str | None = PydanticField(
        description="Reported again after this earlier job restored power there"
    )
    customer: Customer | None = PydanticField(
        description="For a question by account or address: the customer it is about"
    )
    expected_restore_at: str | None
    etr_source: Literal["crew", "plan", "history"] | None
    etr_history: HistoryEstimateOut | None


class AffectedCustomer(Customer):
    phone: str | None


class AffectedCustomers(Answer):
    job_id: str
    kind: str
    planned_start: str | None
    expected_finish: str | None
    customers: list[AffectedCustomer]


class CycleConsumption(Answer):
    cycle: str
    read_at: str
    value: str
    consumption_kwh: str | None
    kwh_per_day: float | None


class MeterConsumption(Answer):
    meter_no: str
    digits: int
    multiplier: str
    expected_low: str | None
    expected_high: str | None
    history: list[CycleConsumption]


class ConsumptionHistory(Answer):
    account_no: str
    customer_name: str
    address: str
    meters: list[MeterConsumption]


# ------------------------------------------------------------------------ administration


class ImportReportOut(Answer):
    rows: int
    accounts_created: int
    accounts_updated: int
    meters_created: int
    meters_updated: int
    unchanged: int
    routes_created: int
    routes_updated: int
    meters_moved: int


# ------------------------------------------------------------------------ the whole cycle


class CycleBrief(Answer):
    cycle: str
    window_start: str = PydanticField(description="The first day of its routes' windows")
    window_end: str = PydanticField(description="The last day of its routes' windows")
    routes: int
    open: int = PydanticField(description="Routes whose assignment is still open")


class CycleFigures(Answer):
    meters: int
    read: int
    skipped: int
    unread: int = PydanticField(description="Meters with no current reading or skip")
    fail: int = PydanticField(description="Open (unreviewed) fail flags")
    warn: int = PydanticField(description="Open (unreviewed) warn flags")


class CycleRoute(CycleFigures):
    assignment_id: int
    route_code: str
    route_name: str
    grid: str | None
    reader: str
    reader_name: str
    window_start: str
    window_end: str
    window_closed: bool
    days_left: int = PydanticField(description="Days of the window left, today included")
    status: Literal["not_started", "in_progress", "complete", "missed"] = PydanticField(
        description="complete: nothing unread; missed: the window closed with meters unread"
    )


class CycleReader(CycleFigures):
    reader: str
    reader_name: str
    routes: int


class CycleStatusCounts(Answer):
    not_started: int
    in_progress: int
    complete: int
    missed: int


class CycleOverview(Answer):
    cycle: str
    today: str = PydanticField(description="The local date days left are counted from")
    window_start: str | None
    window_end: str | None
    grids: list[str] = PydanticField(description="The grids in scope with routes in the cycle")
    total: int = PydanticField(description="Routes the filters select (the page is of these)")
    totals: CycleFigures
    by_status: CycleStatusCounts = PydanticField(
        description="Routes per status, before the status filter"
    )
    routes: list[CycleRoute]
    readers: list[CycleReader]


class ReaderCycleFlags(Answer):
    cycle: str
    routes: int
    readings: int
    fail: int
    warn: int
    upheld: int


class ReaderFlags(Answer):
    reader: str
    reader_name: str
    routes: int
    readings: int
    fail: int = PydanticField(description="Fail flags not dismissed")
    warn: int = PydanticField(description="Warn flags not dismissed")
    upheld: int = PydanticField(description="Flags a supervisor upheld (the reading disputed)")
    fail_per_100: float | None = PydanticField(description="Fail flags per 100 readings")
    cycles: list[ReaderCycleFlags]


class ReadersFlags(Answer):
    cycles: list[str] = PydanticField(description="The cycles counted, oldest first")
    readers: list[ReaderFlags]


class BillingItem(Answer):
    """A reading ready to bill, as it was when it became ready; never sent with other content."""

    reading_id: str
    account_no: str
    meter_no: str
    cycle: str
    read_at: str
    previous: str
    current: str
    consumption_kwh: str = PydanticField(description="Roll-over and multiplier applied")
    supersedes: str | None = PydanticField(description="The reading this re-read corrects")


class BillingFeed(Answer):
    items: list[BillingItem]
    cursor: str = PydanticField(description="Pass it back to get what came after these items")
    has_more: bool


class HoldFlag(Answer):
    code: str
    review: str | None = PydanticField(description="None: open; rejected: upheld")
    message: str = PydanticField(description="In the caller's language")


class HeldReading(Answer):
    reading_id: str
    account_no: str
    meter_no: str
    route: str
    grid: str | None
    read_at: str
    current: str
    reason: Literal["flagged", "validation_pending", "no_previous_register"]
    flags: list[HoldFlag]


class UnreadAccount(Answer):
    account_no: str
    meter_no: str
    route: str
    grid: str | None
    state: Literal["skipped", "unread"]
    skip_code: str | None


class BillingHolds(Answer):
    cycle: str
    held: list[HeldReading]
    unread: list[UnreadAccount] = PydanticField(
        description="No reading to bill: not read yet, or skipped (bill an estimate, marked so)"
    )


class BillingGridProgress(Answer):
    grid: str | None
    ready: int
    held: int
    skipped: int
    unread: int
    days_left: int = PydanticField(description="Days of the grid's windows still to work")


class BillingProgress(Answer):
    cycle: str
    grids: list[BillingGridProgress]
