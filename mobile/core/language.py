"""The handheld's language, and the words and formats its screens write in.

One person holds a handheld at a time, so the process has one language: the user's choice in
the app, else `--lang`, else the system's (common.i18n). Every sentence a screen shows goes
through `_` (the kv file imports it too), every code the wire carries (a skip reason, a job's
kind) through its label here, and every time and number through the formatters below.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal

from babel.dates import format_skeleton, format_time
from babel.numbers import format_decimal

from common.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, translate

_current = DEFAULT_LANGUAGE


def use(language: str) -> None:
    """Speak `language` (one of common.i18n.LANGUAGES) from now on."""
    global _current
    if language not in LANGUAGES:
        raise ValueError(f"no such language {language!r}: one of {', '.join(LANGUAGES)}")
    _current = language


def current() -> str:
    return _current


def _(message: str) -> str:
    """`message` in the handheld's language."""
    return translate(_current, message)


# What the wire's codes say on screen. The codes stay on the wire and in the database; only
# these labels reach a person.
SKIP_LABELS = {
    "no_access": N_("No access"),
    "locked": N_("Door locked"),
    "dog": N_("Dog"),
    "meter_missing": N_("Meter missing"),
    "meter_damaged": N_("Meter damaged"),
    "other": N_("Other reason"),
}
JOB_KIND_LABELS = {
    "fault": N_("Fault outage"),
    "temporary_repair": N_("Temporary repair outage"),
    "planned": N_("Planned outage"),
    "meter_check": N_("Meter check"),
}
URGENCY_LABELS = {"urgent": N_("Urgent"), "normal": N_("Normal")}
JOB_STATUS_LABELS = {
    "created": N_("Not started"),
    "assigned": N_("Assigned"),
    "started": N_("Under way"),
    "finished": N_("Finished"),
    "cancelled": N_("Cancelled"),
}
CHECK_METHOD_LABELS = {"known_load": N_("Known load"), "pulse_lamp": N_("Pulse lamp")}
CHECK_OUTCOME_LABELS = {
    "meter_ok": N_("Meter accurate"),
    "meter_fast": N_("Meter runs fast"),
    "meter_slow": N_("Meter runs slow"),
    "meter_faulty": N_("Meter faulty"),
    "inconclusive": N_("Inconclusive"),
}
SYNC_STATUS_LABELS = {
    "pending": N_("waiting to send"),
    "sent": N_("sent"),
    "accepted": N_("received by the office"),
    "duplicate": N_("received by the office"),
    "rejected": N_("refused by the office"),
}

# Why the office refused a reading, and what the reader does about it, by the push's error code.
REFUSALS = {
    "already_read": (
        N_("The office already holds a reading of this meter (made on another handheld?)."),
        N_("If yours is right, ask the supervisor for a re-read."),
    ),
    "locked": (
        N_("The office holds this reading with other content."),
        N_("Tell the supervisor; the reading stays on this handheld."),
    ),
    "not_your_assignment": (
        N_("This route is not given to you at the office."),
        N_("Ask the supervisor to give you the route."),
    ),
    "unknown_assignment": (
        N_("The office no longer has this route."),
        N_("Sync, then ask the supervisor."),
    ),
    "meter_not_on_route": (
        N_("This meter is no longer on the route."),
        N_("Ask the supervisor."),
    ),
    "value_exceeds_dials": (
        N_("The value does not fit the meter's dials."),
        N_("Ask the supervisor for a re-read to correct it."),
    ),
    "unknown_reread_order": (
        N_("The re-read order was withdrawn."),
        N_("Ask the supervisor."),
    ),
    "server_error": (
        N_("The office failed to store this record, again and again."),
        N_("Tell the supervisor; the record stays on this handheld."),
    ),
    "not_storable": (
        N_("The office's database cannot hold this record."),
        N_("Tell the supervisor; the record stays on this handheld."),
    ),
    "id_taken": (
        N_("The office holds another person's record with this record's number."),
        N_("Tell the supervisor; the record stays on this handheld."),
    ),
    "reread_order_closed": (
        N_("The re-read order was already closed."),
        N_("Ask the supervisor."),
    ),
}
REFUSED_ANYWAY = (
    N_("The office refused this reading."),
    N_("Tell the supervisor; the reading stays on this handheld."),
)


def refusal_advice(code: str) -> tuple[str, str]:
    """What happened and what to do, in the handheld's language, for a refusal's code."""
    happened, todo = REFUSALS.get(code, REFUSED_ANYWAY)
    return _(happened), _(todo)


def label(labels: dict[str, str], code: str | None) -> str:
    """The label of `code` in the handheld's language; an unknown code is shown as it is."""
    if code is None:
        return ""
    return _(labels[code]) if code in labels else code


def code_of(labels: dict[str, str], shown: str) -> str | None:
    """The code whose label is `shown` (what a spinner holds), or None."""
    return next((code for code, text in labels.items() if _(text) == shown), None)


def _locale() -> str:
    return _current


def number(value: Decimal | float | int | None) -> str:
    """A number as the language writes it, every digit kept (a register is read exactly)."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        # Babel would round a Decimal to 3 places by its pattern; a register keeps its digits.
        places = max(0, -value.normalize().as_tuple().exponent)  # type: ignore[operator]
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return format_decimal(value, format=pattern, locale=_locale(), group_separator=False)
    return format_decimal(value, locale=_locale(), group_separator=False)


def day(d: date) -> str:
    """A day with its weekday, short: 12月2日周三 / Wed, Dec 2."""
    return format_skeleton("MMMEd", d, locale=_locale())


def clock_time(t: datetime, zone: tzinfo | None = None) -> str:
    """A time of day in the handheld's zone (or `zone`): 14:05."""
    return format_time(t.astimezone(zone), "HH:mm", locale=_locale())


def moment(t: datetime | None, zone: tzinfo | None = None) -> str:
    """A day and time in the handheld's zone, with the zone named (a crew's expected finish is
    told to a caller by an agent who may sit elsewhere): 12月2日 14:05 (GMT+08:00)."""
    if t is None:
        return "-"
    local = t.astimezone(zone)
    stamp = format_skeleton("MMMd", local, locale=_locale())
    return f"{stamp} {clock_time(local, local.tzinfo)} ({zone_name(local.utcoffset())})"


def zone_name(offset: timedelta | None) -> str:
    """A zone as people here say it: 北京时间 for UTC+8, else UTC+h[:mm]."""
    if offset == timedelta(hours=8):
        return _("China Standard Time")
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
