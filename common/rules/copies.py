"""Positions copied rather than measured: a day's track that replays an earlier track after a
time shift (`replayed_track`), and fixes that sit on the meter's own coordinates reading after
reading (`fix_on_meter`). Real GPS never repeats itself to a tenth of a metre; a copy does."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, tzinfo

from common.geo import distance_m
from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    EarlierTrack,
    Finding,
    MeterFacts,
    ReadingFacts,
    Stamp,
    Thresholds,
    Track,
    TrackFix,
    rounded,
)
from common.rules.movement import by_reader

Step = tuple[int, int, int]  # (seconds, lat grid cells, lon grid cells)
Run = tuple[Step, ...]

# A run found more often than this in one day (a logger stepping the same metre each second down
# a straight street) tells nothing about where it was copied from, and would cost a vote per pair.
COMMON_RUN = 8
SHIFTS_VERIFIED = 5  # the likeliest (track, shift) pairs measured step by step


def stamps(points: Iterable[TrackFix]) -> list[Stamp]:
    """Track points as the replay rule compares them: (seconds since the epoch, lat, lon)."""
    return [(p.t.timestamp(), p.lat, p.lon) for p in points]


def _steps(points: Sequence[Stamp], grid: float) -> list[Step | None]:
    """Each step between consecutive points on the grid; None for a step that stays in its cell
    (a logger holding a still position repeats that on every day)."""
    steps: list[Step | None] = []
    append = steps.append
    cells = 1 / grid
    t0, lat0, lon0 = points[0] if points else (0.0, 0.0, 0.0)
    for t, lat, lon in itertools.islice(points, 1, None):  # hot: 180,000 points a push
        dlat, dlon = round((lat - lat0) * cells), round((lon - lon0) * cells)
        append((round(t - t0), dlat, dlon) if dlat or dlon else None)
        t0, lat0, lon0 = t, lat, lon
    return steps


def _runs(steps: Sequence[Step | None], k: int) -> Iterable[tuple[int, Run]]:
    """(index of the first point, run) for every k consecutive steps that all move."""
    for i in range(len(steps) - k + 1):
        run = steps[i : i + k]
        if None not in run:
            yield i, tuple(step for step in run if step is not None)


def _shift_votes(
    day: Sequence[Stamp], earlier: Sequence[EarlierTrack], thresholds: Thresholds
) -> Counter[tuple[int, int]]:
    """How many runs of steps of `day` repeat a run of each earlier track at each time shift
    (whole seconds, later minus earlier): a hash lookup per run, never a pair of tracks walked
    point against point."""
    grid, k = thresholds.replay_grid_deg, thresholds.replay_run_steps
    index: dict[Run, list[int]] = defaultdict(list)
    for i, run in _runs(_steps(day, grid), k):
        index[run].append(i)
    index = {run: starts for run, starts in index.items() if len(starts) <= COMMON_RUN}
    first_steps = {run[0] for run in index}
    votes: Counter[tuple[int, int]] = Counter()
    for e, track in enumerate(earlier):
        steps = _steps(track.points, grid)
        for j in range(len(steps) - k + 1):
            if steps[j] not in first_steps:  # most runs end here, before a tuple is built
                continue
            starts = index.get(tuple(steps[j : j + k]))  # type: ignore[arg-type]
            if starts is None:
                continue
            then = track.points[j][0]
            for i in starts:
                shift = round(day[i][0] - then)
                if shift > 0:
                    votes[(e, shift)] += 1
    return votes


def _repeated(
    day: Sequence[Stamp], track: EarlierTrack, shift: int, thresholds: Thresholds
) -> tuple[int, int]:
    """(points of `day` that step from the point before as `track` stepped between its points
    at exactly the shifted times, within replay_tolerance_deg at each end; points of `day` whose
    step moved and has such a pair of points to compare with). Steps, not positions: a copy
    moved as a whole onto another street is still a copy."""
    at = {round(t * 1000): (lat, lon) for t, lat, lon in track.points}
    tol = 2 * thresholds.replay_tolerance_deg  # a rounding error at each end of the step
    on = compared = 0
    before: tuple[float, float, float, float] | None = None
    for t, lat, lon in day:
        q = at.get(round((t - shift) * 1000))
        if q is None:
            continue
        if before is not None:
            a_lat, a_lon, b_lat, b_lon = before
            dlat, dlon = q[0] - b_lat, q[1] - b_lon
            if dlat != 0 or dlon != 0:  # a logger holding still repeats that every day
                compared += 1
                if abs(lat - a_lat - dlat) <= tol and abs(lon - a_lon - dlon) <= tol:
                    on += 1
        before = (lat, lon, *q)
    return on, compared


def replayed_track(
    day: Sequence[TrackFix],
    earlier: Sequence[EarlierTrack],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> tuple[EarlierTrack, int, int, int] | None:
    """The earlier track that one reader's day (points in time order) repeats after a time
    shift, as (track, shift in seconds, steps repeated, points of the day), or None.

    Runs of steps rounded to a grid are looked up in a hash to propose shifts; the likeliest
    few are then measured step by step at the shifted instants, where a copy repeats each step
    within replay_tolerance_deg (rounding) and honest GPS, however often the street is walked,
    is metres off. Points dropped from or added to a copy only lose the runs and steps they
    touch."""
    if len(day) < thresholds.replay_min_points or not earlier:
        return None
    return _replayed(stamps(day), earlier, thresholds)


def _replayed(
    today: Sequence[Stamp], earlier: Sequence[EarlierTrack], thresholds: Thresholds
) -> tuple[EarlierTrack, int, int, int] | None:
    """replayed_track on the day's points as stamps."""
    if len(today) < thresholds.replay_min_points or not earlier:
        return None
    votes = _shift_votes(today, earlier, thresholds)
    best: tuple[EarlierTrack, int, int, int] | None = None
    for (e, shift), _ in votes.most_common(SHIFTS_VERIFIED):
        on, found = _repeated(today, earlier[e], shift, thresholds)
        if on < thresholds.replay_min_points or on < thresholds.replay_min_share * found:
            continue
        if best is None or on > best[2]:
            best = (earlier[e], shift, on, len(today))
    return best


def replayed_tracks(
    track: Track,
    earlier: Sequence[EarlierTrack],
    tz: tzinfo,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    worked: Collection[tuple[int | None, date]] | None = None,
) -> list[Finding]:
    """Each reader's local day of `track` that repeats an earlier day's track (of `earlier`, or
    of the reader's own earlier days in `track`) is flagged: fail, since no one walks a street
    again to a tenth of a metre at the same seconds. One finding per reader-day.

    worked: the (reader, local day)s to judge, those the readings were taken on (a reader of
    None: any reader's); a day with no reading claims nothing, and the server need not judge
    again on every push each day of a window. None: every day."""
    judged = None if worked is None else set(worked)
    findings = []
    for walk, times in track.timed_walks():  # stamped once, as the track was indexed
        days: dict[date, list[TrackFix]] = defaultdict(list)
        day_stamps: dict[date, list[Stamp]] = defaultdict(list)
        for p, t in zip(walk, times, strict=True):
            d = p.t.astimezone(tz).date()
            days[d].append(p)
            day_stamps[d].append((t, p.lat, p.lon))
        reader = walk[0].reader_id if walk else None
        own = [
            EarlierTrack(d, day_stamps[d], reader_id=reader, device_id=ps[0].device_id)
            for d, ps in days.items()
        ]
        for day, points in sorted(days.items()):
            if judged is not None and not {(reader, day), (None, day)} & judged:
                continue
            candidates = [e for e in (*earlier, *own) if e.day < day]
            found = _replayed(day_stamps[day], candidates, thresholds)
            if found is None:
                continue
            copied, shift, repeated, total = found
            devices = {p.device_id for p in points}
            params = {
                "day": day.isoformat(),
                "copied_day": copied.day.isoformat(),
                "assignment": copied.assignment_id,
                "shift_s": shift,
                "repeated": repeated,
                "points": total,
                "reader": _name(copied) if copied.reader_id != reader else None,
                "device": copied.device_id if copied.device_id not in devices else None,
            }
            who = "" if reader is None else f"{reader}@"
            findings.append(Finding("replayed_track", "fail", params, subject=f"replay:{who}{day}"))
    return findings


def _name(track: EarlierTrack) -> str | None:
    """Whose the copied track is, for the sentence: the reader's name, else their id."""
    return track.reader or (None if track.reader_id is None else str(track.reader_id))


def fix_on_meter(
    readings: Sequence[ReadingFacts],
    meters: Mapping[int, MeterFacts],
    tz: tzinfo,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """Fixes within on_meter_m of the meter's mapped position, reading after reading (a run of
    on_meter_min_readings or more of one reader's consecutive readings in a local day), are
    flagged each. Fail: an honest fix lands within 0.5 m of the mapped point about once in 130
    readings (91 of 12,000 on simulated honest days), so three in a row about once in two million;
    a run is a position typed or copied from the meter list. A single one is left to the audit page,
    which calls it suspicious."""
    findings = []
    for walk in by_reader(readings):
        runs: list[list[tuple[ReadingFacts, MeterFacts, float]]] = [[]]
        day: date | None = None
        for r in walk:
            meter = meters.get(r.meter_id)
            today = r.read_at.astimezone(tz).date()
            if today != day:
                runs.append([])  # a run is within one day
                day = today
            d = None
            if r.fix is not None and meter is not None:
                d = distance_m(r.fix.lat, r.fix.lon, meter.lat, meter.lon)
            if meter is None or d is None or d >= thresholds.on_meter_m:
                runs.append([])  # a measured fix (or none) ends the run
            else:
                runs[-1].append((r, meter, d))
        for run in runs:
            if len(run) < thresholds.on_meter_min_readings:
                continue
            for r, meter, d in run:
                params = {
                    "meter": meter.name,
                    "distance_m": rounded(d, 2),
                    "count": len(run),
                    "limit_m": thresholds.on_meter_m,
                }
                findings.append(Finding("fix_on_meter", "fail", params, r.id, meter.id))
    return findings
