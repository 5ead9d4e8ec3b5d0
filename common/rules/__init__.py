"""The rules of the trade as pure functions (no database, no HTTP).

Each rule is one function named after the flag code it produces, with its thresholds as named
fields of `Thresholds`. The server's runner (server/validation/runner.py) feeds the rules rows
turned into the small frozen facts (facts.py); tests feed them hand-made days. `validate_route`
(route.py) runs them all.

Decisions worth knowing:
- Presence has two witnesses. The reading's own fix (`far_from_meter`, `no_fix`) can be typed
  or faked by an app; the track recorded around the reading (`not_on_track`) is harder to fake,
  so it is checked on its own, on the cleaned track, and must also stay near the meter long
  enough to read it (`no_dwell`: a car driven past does not). Mock track points witness nothing.
- `no_dwell` is its own code, not `not_on_track` with other params: the track did come to the
  meter, and the question for the supervisor (was the reader there long enough?) and its
  numbers (seconds, not metres) are different. It is raised only when the track proves the stay
  short; a sparse track says nothing rather than invent a failure.
- The meter's position is uncertain too: its mapped one plus its stated uncertainty, or the one
  learned from past honest fixes; a position within the allowance of either passes.
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
