"""The rules of the trade as pure functions (no database, no HTTP).

Each rule is one function named after the flag code it produces, with its thresholds as named
fields of `Thresholds`. The server's runner (server/validation/runner.py) feeds the rules rows
turned into the small frozen facts (facts.py); tests feed them hand-made days. `validate_route`
(route.py) runs them all.

Decisions worth knowing:
- Presence has two witnesses. The reading's own fix (`far_from_meter`, `no_fix`) can be typed
  or faked by an app; the track recorded around the reading (`not_on_track`) is harder to fake,
  so it is checked on its own. Mock track points witness nothing.
- A superseded reading (a re-read replaced it) is still checked for presence, time and movement:
  it is the record of what the reader claimed. Consumption rules apply to the current reading of
  a meter only, since a re-read exists precisely to replace a doubtful register.
- Re-reads are ordered by a supervisor, so they are exempt from the window and from the route's
  order; they still must be taken at the meter.
- Skips (no value, a skip code) claim presence at the meter too ("the gate was locked"), so the
  presence and movement rules apply to them; consumption rules do not.
- One problem, one finding: `unchanged` is not also reported as `low_consumption`; two readings
  too close in time are `too_fast`, not also `impossible_speed`; a track teleport is one finding
  per jump however many points it spans.
"""
