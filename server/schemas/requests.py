"""What every request body and text parameter must be: free of NUL characters, which no text
column can hold (PostgreSQL refuses them, and a 500 would be the answer)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, model_validator


def _nul_in(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_in(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


# The years a date or time given to Gridwalk may fall in. PostgreSQL and the rules' date
# arithmetic both fail at the calendar's edges (year 9999 moved to UTC+8 overflows); a handheld's
# clock or an admin's window outside them is a mistake, never a record to keep.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def _in_our_times(t: datetime) -> datetime:
    if not FIRST_DAY <= t.astimezone(UTC).date() <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY.year} and {LAST_DAY.year}")
    return t


# An aware date-time within those years.
Moment = Annotated[AwareDatetime, AfterValidator(_in_our_times)]

# The largest id a row can have. The integer keys are INTEGER (32 bits) on PostgreSQL, though
# SQLite's hold 64: a number beyond it, in a path or a body, can name no row, and PostgreSQL
# would refuse to even compare it (a 500), so it is a 422 naming where it was.
MAX_ROW_ID = 2**31 - 1

# A text path or query parameter.
Text = Annotated[str, AfterValidator(_no_nul)]


class RequestModel(BaseModel):
    """A request body: a NUL character anywhere in it is refused, naming where."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul_anywhere(cls, data: Any) -> Any:
        where = _nul_in(data, "")
        if where:
            raise ValueError(f"{where} contains a NUL character")
        return data
