"""An audited route taken away: the track as GPX or GeoJSON, the readings as CSV (for a
spreadsheet or the billing office), each limited to what the auditor may see."""

from __future__ import annotations

import csv
import io
from typing import Any

import gpxpy.gpx
from sqlmodel import Session, col, select

from common.numbers import plain
from server.audit.service import (
    Auditor,
    assignment_detail,
    assignment_readings,
    audited_assignment,
    readings_of,
    track_of,
)
from server.models import (
    Account,
    Meter,
)


def track_gpx(session: Session, *, auditor: Auditor, assignment_id: int) -> str:
    """The reader's track, and the readings as waypoints, as GPX 1.1."""
    assignment, route = audited_assignment(session, auditor, assignment_id)
    readings = readings_of(session, assignment_id)
    meters = {m.id: m for m in session.exec(select(Meter).where(Meter.route_id == route.id))}
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "Gridwalk"
    gpx.name = f"{route.code} assignment {assignment_id}"
    track = gpxpy.gpx.GPXTrack(name=gpx.name)
    segment = gpxpy.gpx.GPXTrackSegment()
    track.segments.append(segment)
    gpx.tracks.append(track)
    for p in track_of(session, assignment, readings):
        segment.points.append(
            gpxpy.gpx.GPXTrackPoint(p.lat, p.lon, time=p.t, horizontal_dilution=None)
        )
    for r in readings:
        meter = meters[r.meter_id]
        lat, lon = (r.fix_lat, r.fix_lon) if r.fix_lat is not None else (meter.lat, meter.lon)
        what = plain(r.value) if r.value is not None else f"skip: {r.skip_code}"
        gpx.waypoints.append(
            gpxpy.gpx.GPXWaypoint(lat, lon, time=r.read_at, name=meter.meter_no, description=what)
        )
    return gpx.to_xml(version="1.1")


def track_geojson(session: Session, *, auditor: Auditor, assignment_id: int) -> dict[str, Any]:
    """The track as a LineString and the meters as Points with their state, as GeoJSON."""
    detail = assignment_detail(session, auditor=auditor, assignment_id=assignment_id)
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [[p["lon"], p["lat"]] for p in detail["track"]],
            },
            "properties": {"kind": "track", "times": [p["t"] for p in detail["track"]]},
        }
    ]
    features += [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [m["lon"], m["lat"]]},
            "properties": {
                "kind": "meter",
                "meter_id": m["id"],
                "meter_no": m["meter_no"],
                "sequence": m["sequence"],
                "state": m["state"],
            },
        }
        for m in detail["meters"]
    ]
    return {"type": "FeatureCollection", "features": features}


CSV_COLUMNS = (
    "order",
    "reading_id",
    "meter_no",
    "account_no",
    "customer_name",
    "address",
    "value",
    "skip_code",
    "note",
    "read_at",
    "received_at",
    "fix_lat",
    "fix_lon",
    "fix_accuracy_m",
    "distance_to_meter_m",
    "exactly_on_meter",
    "superseded_by",
    "disputed",
    "flags",
    "flag_sentences",
)
# A spreadsheet runs a cell that begins with one of these as a formula (=HYPERLINK(...) in a
# customer's name, typed by anyone who can reach the billing system or the handheld's note).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The desks open these files in Excel on Chinese Windows, which reads a UTF-8 file without this
# mark as GBK and shows every name and address garbled; with it, as UTF-8. (The billing CSV
# goes to programs, which would take the mark for data: it offers GBK instead.)
SPREADSHEET_BOM = "\ufeff"


def cell(text: str | None) -> str:
    """Text from people (names, addresses, notes, sentences quoting them) made safe for a
    spreadsheet: a leading formula character is escaped with an apostrophe, which the
    spreadsheet shows as text. Numbers the export formats itself are written as they are."""
    if not text:
        return ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def readings_csv(session: Session, *, auditor: Auditor, assignment_id: int) -> str:
    """The readings, one row per reading in the order taken, with the customer and address, the
    fix and its distance to the meter, and the flags (codes and sentences in the auditor's
    language), safe to open in a spreadsheet."""
    _, route = audited_assignment(session, auditor, assignment_id)
    accounts = {
        m.id: (m, a)
        for m, a in session.exec(
            select(Meter, Account)
            .join(Account, col(Account.id) == Meter.account_id)
            .where(Meter.route_id == route.id)
        )
    }
    out = io.StringIO(SPREADSHEET_BOM)
    out.seek(0, io.SEEK_END)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for i, r in enumerate(
        assignment_readings(session, auditor=auditor, assignment_id=assignment_id), start=1
    ):
        meter, account = accounts[r["meter_id"]]
        fix = r["fix"] or {}
        writer.writerow(
            [
                i,
                r["id"],
                cell(meter.meter_no),
                cell(account.account_no),
                cell(account.customer_name),
                cell(account.address),
                r["value"] or "",
                cell(r["skip_code"]),
                cell(r["note"]),
                r["read_at"],
                r["received_at"],
                fix.get("lat", ""),
                fix.get("lon", ""),
                "" if fix.get("accuracy_m") is None else fix["accuracy_m"],
                fix.get("distance_to_meter_m", ""),
                "yes" if fix.get("exactly_on_meter") else "",
                r["superseded_by"] or "",
                "yes" if r["disputed"] else "",
                "; ".join(f"{f['severity']}:{f['code']}" for f in r["flags"]),
                cell(" | ".join(f["message"] for f in r["flags"])),
            ]
        )
    return out.getvalue()
