"""What every request body and text parameter must be: free of NUL and the other control
characters (no text column can hold a NUL: PostgreSQL refuses it, and a 500 would be the answer;
the others are never typed by a person and break exports and screens)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ValidationInfo, model_validator

# C0 controls and DEL, but tab, line feed and carriage return (a note may have lines).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# How such a character can be spelt in JSON text: escaped (\u0001, \b, \f; the other C0
# controls may not stand raw in a JSON string) or, for DEL, raw. A match may be innocent (an
# escaped backslash before a "b"); no match means the parsed value holds none anywhere.
_CONTROL_IN_JSON = re.compile(rb"\\(?:u00[01][0-9a-fA-F]|u007[fF]|[bf])|\x7f")
# The validation context of models made from a body that `json_free_of_controls` cleared.
SCANNED = {"controls_scanned": True}


def control_character(text: str) -> str | None:
    """What is wrong with `text`, in a few words naming the character, or None."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    char = found.group()
    return (
        "contains a NUL character"
        if char == "\x00"
        else (f"contains a control character (U+{ord(char):04X})")
    )


def _control_in(value: Any, path: str) -> tuple[str, str] | None:
    """Where in a body the first control character is, and what it is, or None."""
    if isinstance(value, str):
        problem = control_character(value)
        return (path, problem) if problem else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _control_in(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def json_free_of_controls(raw: bytes) -> bool:
    """Whether UTF-8 JSON text `raw`, once parsed (by `json.loads`, which refuses a raw control
    character in a string), can hold no control character anywhere: one scan of the body in C,
    instead of a walk through every value of every item in Python (the walk cost a push as much
    as the rest of its checks). A NUL byte means another encoding (UTF-16/32): not cleared."""
    return b"\x00" not in raw and _CONTROL_IN_JSON.search(raw) is None


def _no_nul(text: str) -> str:
    problem = control_character(text)
    if problem:
        raise ValueError(problem)
    return text


# The years a date or time given to Gridwalk may fall in. PostgreSQL and the rules' date
# arithmetic both fail at the calendar's edges (year 9999 moved to UTC+8 overflows); a handheld's
# clock or an admin's window outside them is a mistake, never a record to keep.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def in_our_times(t: datetime) -> datetime:
    try:
        day = t.astimezone(UTC).date()
    except OverflowError:  # the last day of year 9999 west of UTC: no UTC time at all
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY.year} and {LAST_DAY.year}")
    return t


# An aware date-time within those years.
Moment = Annotated[AwareDatetime, AfterValidator(in_our_times)]

# The largest id a row can have. The integer keys are INTEGER (32 bits) on PostgreSQL, though
# SQLite's hold 64: a number beyond it, in a path or a body, can name no row, and PostgreSQL
# would refuse to even compare it (a 500), so it is a 422 naming where it was.
MAX_ROW_ID = 2**31 - 1

# A text path or query parameter.
Text = Annotated[str, AfterValidator(_no_nul)]


class RequestModel(BaseModel):
    """A request body: a NUL or control character anywhere in it is refused, naming where."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul_anywhere(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context is not None and info.context.get("controls_scanned"):
            return data  # the whole body was cleared at once (json_free_of_controls)
        found = _control_in(data, "")
        if found:
            where, problem = found
            raise ValueError(f"{where} {problem}")
        return data
