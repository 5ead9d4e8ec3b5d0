"""The findings' sentences: each flag code's words, as templates of the product's catalog, filled
from the finding's `params` (its numbers and names) in any language the product speaks.

The rules give numbers; this is the one place that turns them into words: in English for the
stored sentence (exports, old clients), in the caller's language at the API edge. A template is
a message id of common/locale (marked N_ so that `scripts.catalogs extract` finds it), so a
sentence a supervisor reads is translated like every other word on the screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import reduce
from typing import Any

from common.i18n import N_

Gettext = Callable[[str], str]
Params = Mapping[str, Any]


def english(message: str) -> str:
    """The message ids are the English sentences."""
    return message


# ------------------------------------------------------------------------- units and numbers


def metres(m: float, _: Gettext = english) -> str:
    if m >= 10_000:
        return _(N_("{n} km")).format(n=f"{m / 1000:.0f}")
    if m >= 1000:
        return _(N_("{n} km")).format(n=f"{m / 1000:.1f}")
    return _(N_("{n} m")).format(n=f"{m:.0f}")


def seconds(s: float, _: Gettext = english) -> str:
    s = abs(s)
    if s < 120:
        return _(N_("{n} s")).format(n=f"{s:.0f}")
    if s < 2 * 3600:
        return _(N_("{n} min")).format(n=f"{s / 60:.0f}")
    if s < 2 * 86400:
        return _(N_("{n} h")).format(n=f"{s / 3600:.1f}")
    return _(N_("{n} days")).format(n=f"{s / 86400:.1f}")


def kwh(value: Decimal | str, _: Gettext = english) -> str:
    return _(N_("{n} kWh")).format(n=f"{Decimal(value).normalize():,f}")


def register(value: Decimal | str) -> str:
    return format(Decimal(value).normalize(), "f")


def speed(kmh: float | None, _: Gettext = english) -> str:
    """A speed; None (or infinite) is a move in no time at all."""
    if kmh is None or math.isinf(kmh):
        return _(N_("instantly"))
    return _(N_("{n} km/h")).format(n=f"{kmh:,.0f}")


def joined(parts: list[str], _: Gettext = english) -> str:
    return reduce(lambda a, b: _(N_("{first}; {second}")).format(first=a, second=b), parts)


# -------------------------------------------------------------------------------- sentences


def _no_fix(p: Params, _: Gettext) -> str:
    problem = p["problem"]
    if problem == "none":
        return _(N_("reading of meter {meter} has no position")).format(meter=p["meter"])
    if problem == "coarse":
        return _(
            N_(
                "reading of meter {meter} has a fix of accuracy {accuracy}, too coarse to place "
                "the reader (allowed {allowed})"
            )
        ).format(
            meter=p["meter"],
            accuracy=metres(p["accuracy_m"], _),
            allowed=metres(p["allowed_m"], _),
        )
    early = N_(
        "reading of meter {meter} has a fix taken {age} before the reading (allowed {allowed})"
    )
    late = N_(
        "reading of meter {meter} has a fix taken {age} after the reading (allowed {allowed})"
    )
    template = early if problem == "early" else late
    return _(template).format(
        meter=p["meter"], age=seconds(p["age_s"], _), allowed=seconds(p["allowed_s"], _)
    )


def _mock_location(p: Params, _: Gettext) -> str:
    reasons = []
    if p.get("fix_mock"):
        reasons.append(_(N_("its fix came from a mock location provider")))
    elif p.get("provider"):
        reasons.append(
            _(N_("its fix came from the simulated provider '{provider}'")).format(
                provider=p["provider"]
            )
        )
    if p.get("mock_points"):
        reasons.append(
            _(
                N_(
                    "{count} track point(s) within {window} of it came from a mock location "
                    "provider"
                )
            ).format(count=p["mock_points"], window=seconds(p["window_s"], _))
        )
    return _(N_("reading of meter {meter}: {reasons}")).format(
        meter=p["meter"], reasons=joined(reasons, _)
    )


def _allowance(p: Params, _: Gettext, accuracy_m: float | None = None) -> str:
    """What a presence finding allowed: the radius, the position's accuracy (None: each track
    point's own) and the meter's position uncertainty, if it has one."""
    radius = metres(p["radius_m"], _)
    uncertainty = p.get("uncertainty_m")
    if accuracy_m is None and uncertainty:
        template = N_("allowed {radius} + its accuracy + meter position {uncertainty}")
    elif accuracy_m is None:
        template = N_("allowed {radius} + its accuracy")
    elif uncertainty:
        template = N_("allowed {radius} + accuracy {accuracy} + meter position {uncertainty}")
    else:
        template = N_("allowed {radius} + accuracy {accuracy}")
    return _(template).format(
        radius=radius,
        accuracy=metres(accuracy_m, _) if accuracy_m is not None else "",
        uncertainty=metres(uncertainty, _) if uncertainty else "",
    )


def _far_from_meter(p: Params, _: Gettext) -> str:
    allowance = _allowance(p, _, p["accuracy_m"])
    template = (
        N_(
            "fix {distance} from where meter {meter} probably is, learned from past readings "
            "({allowance})"
        )
        if p.get("learned")
        else N_("fix {distance} from meter {meter} ({allowance})")
    )
    sentence = _(template).format(
        distance=metres(p["distance_m"], _), meter=p["meter"], allowance=allowance
    )
    if p.get("grey_zone_m") is None:
        return sentence
    return _(N_("{sentence}: just beyond the allowance (by less than {grey}), to review")).format(
        sentence=sentence, grey=metres(p["grey_zone_m"], _)
    )


def _not_on_track(p: Params, _: Gettext) -> str:
    if p.get("nearest_m") is None:
        return _(
            N_(
                "the track has no point within {window} of the reading of meter {meter} "
                "(phone off, no GPS, or track not sent)"
            )
        ).format(window=seconds(p["window_s"], _), meter=p["meter"])
    return _(
        N_(
            "the track within {window} of the reading never came near meter {meter}: nearest "
            "point {distance} away ({allowance})"
        )
    ).format(
        window=seconds(p["window_s"], _),
        meter=p["meter"],
        distance=metres(p["nearest_m"], _),
        allowance=_allowance(p, _),
    )


def _no_dwell(p: Params, _: Gettext) -> str:
    return _(
        N_(
            "the track passed meter {meter} but stayed near it only {dwell} (surely less than "
            "{at_most}) around the reading; reading a meter takes at least {needed} (nearest "
            "point {distance}, {allowance})"
        )
    ).format(
        meter=p["meter"],
        dwell=seconds(p["dwell_s"], _),
        at_most=seconds(p["at_most_s"], _),
        needed=seconds(p["needed_s"], _),
        distance=metres(p["nearest_m"], _),
        allowance=_allowance(p, _),
    )


def _too_fast(p: Params, _: Gettext) -> str:
    return _(
        N_(
            "meter {meter} confirmed {gap} after meter {previous}, {distance} away (a reading "
            "takes at least {minimum})"
        )
    ).format(
        meter=p["meter"],
        gap=seconds(p["gap_s"], _),
        previous=p["previous"],
        distance=metres(p["distance_m"], _),
        minimum=seconds(p["minimum_s"], _),
    )


def _impossible_speed(p: Params, _: Gettext) -> str:
    limit = _(N_("{n} km/h")).format(n=f"{p['limit_kmh']:.0f}")
    if "meter" in p:
        return _(
            N_(
                "reading of meter {meter} is {distance} from the previous reading (meter "
                "{previous}) {gap} earlier: {speed} (limit {limit})"
            )
        ).format(
            meter=p["meter"],
            distance=metres(p["distance_m"], _),
            previous=p["previous"],
            gap=seconds(p["gap_s"], _),
            speed=speed(p["speed_kmh"], _),
            limit=limit,
        )
    sentence = _(N_("track jumped {distance} in {gap} at {at}: {speed} (limit {limit})")).format(
        distance=metres(p["distance_m"], _),
        gap=seconds(p["gap_s"], _),
        at=p["at"],
        speed=speed(p["speed_kmh"], _),
        limit=limit,
    )
    if p.get("steps", 1) > 1:
        sentence = _(N_("{sentence}; {steps} steps in a row were too fast")).format(
            sentence=sentence, steps=p["steps"]
        )
    return sentence


def _outside_window(p: Params, _: Gettext) -> str:
    template = (
        N_("meter {meter} read on {day} ({zone}), before the window {start} to {end}")
        if p["when"] == "before"
        else N_("meter {meter} read on {day} ({zone}), after the window {start} to {end}")
    )
    return _(template).format(
        meter=p["meter"], day=p["day"], zone=p["zone"], start=p["start"], end=p["end"]
    )


def _clock_skew(p: Params, _: Gettext) -> str:
    tolerance, transit = p["tolerance_s"], p["transit_s"]
    reasons = []
    lag = p.get("stamped_s")
    if lag is not None and lag > 0:
        reasons.append(
            _(
                N_(
                    "its push was stamped {lag} before the server received it (allowed "
                    "{allowed} for clock and transit): the device clock is behind"
                )
            ).format(lag=seconds(lag, _), allowed=seconds(tolerance + transit, _))
        )
    elif lag is not None:
        reasons.append(
            _(
                N_(
                    "its push was stamped {lag} after the server received it (allowed "
                    "{allowed}): the device clock is ahead"
                )
            ).format(lag=seconds(lag, _), allowed=seconds(tolerance, _))
        )
    if p.get("ahead_s") is not None:
        reasons.append(
            _(N_("it is dated {ahead} after the server received it (allowed {allowed})")).format(
                ahead=seconds(p["ahead_s"], _), allowed=seconds(tolerance, _)
            )
        )
    return _(N_("reading of meter {meter}: {reasons}")).format(
        meter=p["meter"], reasons=joined(reasons, _)
    )


def _negative_consumption(p: Params, _: Gettext) -> str:
    return _(
        N_(
            "meter {meter} reads {value}, below last cycle's {last}: {kwh} (not a roll-over of "
            "its {digits} dials)"
        )
    ).format(
        meter=p["meter"],
        value=register(p["value"]),
        last=register(p["last"]),
        kwh=kwh(p["kwh"], _),
        digits=p["digits"],
    )


def _high_consumption(p: Params, _: Gettext) -> str:
    template = N_("meter {meter} used {kwh} this cycle, above the expected {expected} at most")
    return _(template).format(
        meter=p["meter"], kwh=kwh(p["kwh"], _), expected=kwh(p["expected_kwh"], _)
    )


def _low_consumption(p: Params, _: Gettext) -> str:
    template = N_("meter {meter} used {kwh} this cycle, below the expected {expected} at least")
    return _(template).format(
        meter=p["meter"], kwh=kwh(p["kwh"], _), expected=kwh(p["expected_kwh"], _)
    )


def _unchanged(p: Params, _: Gettext) -> str:
    if p.get("usual_kwh") is None:
        return _(
            N_("meter {meter} reads {value}, unchanged since last cycle, on an active account")
        ).format(meter=p["meter"], value=register(p["value"]))
    return _(
        N_(
            "meter {meter} reads {value}, unchanged since last cycle, on an active account that "
            "usually uses at least {usual}"
        )
    ).format(meter=p["meter"], value=register(p["value"]), usual=kwh(p["usual_kwh"], _))


def _missed(p: Params, _: Gettext) -> str:
    return _(
        N_(
            "meter {meter} (sequence {sequence}) has neither a reading nor a skip at the close "
            "of the window {start} to {end}"
        )
    ).format(meter=p["meter"], sequence=p["sequence"], start=p["start"], end=p["end"])


def _wrong_meter_order(p: Params, _: Gettext) -> str:
    inverted, pairs = p["inverted"], p["pairs"]
    return _(
        N_(
            "route walked far from its sequence: {inverted} of {pairs} pairs of meters read in "
            "reverse order ({share}; more than {threshold} is noted)"
        )
    ).format(
        inverted=f"{inverted:,}",
        pairs=f"{pairs:,}",
        share=f"{inverted / pairs:.0%}",
        threshold=f"{p['threshold']:.0%}",
    )


def _replayed_track(p: Params, _: Gettext) -> str:
    sentence = _(
        N_(
            "the track of {day} repeats the track of {copied} shifted by {shift}: {repeated} of "
            "its {points} points moved as it moved, to a tenth of a metre"
        )
    ).format(
        day=p["day"],
        copied=p["copied_day"],
        shift=seconds(p["shift_s"], _),
        repeated=f"{p['repeated']:,}",
        points=f"{p['points']:,}",
    )
    whose = []
    if p.get("assignment") is not None:
        whose.append(_(N_("assignment {assignment}")).format(assignment=p["assignment"]))
    if p.get("reader"):
        whose.append(_(N_("reader {reader}")).format(reader=p["reader"]))
    if p.get("device"):
        whose.append(_(N_("device {device}")).format(device=p["device"]))
    if whose:
        sentence = _(N_("{sentence} ({whose})")).format(sentence=sentence, whose=joined(whose, _))
    return sentence


def _fix_on_meter(p: Params, _: Gettext) -> str:
    return _(
        N_(
            "fix of meter {meter} is {distance} from the meter's coordinates, one of {count} "
            "such fixes in a row (a real fix is seldom within {limit} of the meter)"
        )
    ).format(
        meter=p["meter"],
        distance=_(N_("{n} m")).format(n=f"{p['distance_m']:.2f}"),
        count=p["count"],
        limit=_(N_("{n} m")).format(n=f"{p['limit_m']:g}"),
    )


SENTENCES: dict[str, Callable[[Params, Gettext], str]] = {
    "no_fix": _no_fix,
    "mock_location": _mock_location,
    "far_from_meter": _far_from_meter,
    "not_on_track": _not_on_track,
    "no_dwell": _no_dwell,
    "impossible_speed": _impossible_speed,
    "too_fast": _too_fast,
    "outside_window": _outside_window,
    "clock_skew": _clock_skew,
    "negative_consumption": _negative_consumption,
    "high_consumption": _high_consumption,
    "low_consumption": _low_consumption,
    "unchanged": _unchanged,
    "missed": _missed,
    "wrong_meter_order": _wrong_meter_order,
    "replayed_track": _replayed_track,
    "fix_on_meter": _fix_on_meter,
}


def flag_sentence(code: str, params: Params, gettext: Gettext = english) -> str:
    """The sentence of a finding of `code` with `params`, in the language of `gettext`.
    Raises KeyError for a code or a params it cannot say (a flag made by hand)."""
    return SENTENCES[code](params, gettext)


# ------------------------------------------------------------------- an assignment's verdict


def _placed(p: Params, _: Gettext) -> str:
    return _(N_("{at} of {done} readings placed at their meter by their own fix")).format(
        at=p["at_meter"], done=p["done"]
    )


def verdict_sentence(code: str, p: Params, _: Gettext = english) -> str:
    """The one line an assignment's day comes to (common/rules/verdict.py), in the language of
    `_`: what the track did, then what the readings' fixes show, then what is suspicious."""
    parts: list[str] = []
    if code == "nothing":
        parts.append(_(N_("nothing read and no track yet")))
    elif code == "no_track":
        parts.append(
            _(N_("no track; {done} of {meters} meters read or skipped")).format(
                done=p["done"], meters=p["meters"]
            )
        )
    elif code == "stayed":
        template = (
            N_("the track stayed within {spread} of one spot, {away} from the route, for {span}")
            if p["away_m"] is not None
            else N_("the track stayed within {spread} of one spot for {span}")
        )
        parts.append(
            _(template).format(
                spread=metres(p["spread_m"], _),
                away=metres(p["away_m"] or 0, _),
                span=seconds(p["span_s"], _),
            )
        )
    else:
        template = (
            N_("walked {distance} along the route, past {passed} of {meters} meters")
            if p["along"]
            else N_("walked {distance}, past only {passed} of {meters} meters")
        )
        parts.append(
            _(template).format(
                distance=metres(p["walked_m"], _), passed=p["passed"], meters=p["meters"]
            )
        )
    if p["done"]:
        parts.append(_placed(p, _))
    if p["exact"]:
        parts.append(
            _(N_("{n} fix(es) exactly on the meter's coordinates: typed, not measured")).format(
                n=p["exact"]
            )
        )
    if p["mock_points"]:
        parts.append(_(N_("{n} track point(s) from a mock location")).format(n=p["mock_points"]))
    return joined(parts, _)
