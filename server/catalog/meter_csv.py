"""A billing system's meters CSV, checked as it is read: each good row parsed into a MeterRow,
every bad row named by its line and column (nothing is written here; imports.py writes, and
checks the rows against each other)."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import chain, repeat
from operator import itemgetter
from typing import IO, Any

from server.catalog.accounts import is_phone
from server.core.errors import Invalid
from server.schemas.requests import control_character

REQUIRED_COLUMNS = (
    "account_no",
    "customer_name",
    "address",
    "meter_no",
    "lat",
    "lon",
    "route_code",
    "sequence",
)
OPTIONAL_COLUMNS = (
    "digits",
    "multiplier",
    "last_reading",
    "last_read_at",
    "expected_low",
    "expected_high",
    "grid_code",
    "position_uncertainty_m",
    "phone",
)
DEFAULT_DIGITS = 6
DEFAULT_MULTIPLIER = Decimal(1)
# A meter's position uncertain by more than this places no one near it: the file is wrong.
MAX_POSITION_UNCERTAINTY_M = 1000
# Beyond this many, a list of errors helps no one (a wrong file, not a few bad rows).
MAX_LISTED_ERRORS = 1000

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")
_NOT_FINITE = frozenset(
    {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
)
_THOUSANDTH = Decimal("0.001")
_MAX_INT32 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class MeterRow:
    line: int
    account_no: str
    customer_name: str
    address: str
    meter_no: str
    lat: float
    lon: float
    route_code: str
    sequence: int
    digits: int
    multiplier: Decimal
    last_reading: Decimal | None
    last_read_at: datetime | None
    expected_low: Decimal | None
    expected_high: Decimal | None
    grid_code: str | None
    position_uncertainty_m: float | None
    # The customer's phone, for the notices of a planned outage (None: not given, kept as is).
    phone: str | None = None


def row_error(line: int, column: str | None, message: str) -> dict[str, Any]:
    """An error of the file, named by its line and column (None: the whole line)."""
    return {"line": line, "column": column, "error": message}


def invalid_file(errors: list[dict[str, Any]]) -> Invalid:
    bad_lines = len({e["line"] for e in errors})
    shown = errors[:MAX_LISTED_ERRORS]
    detail = (
        f"the file has {len(errors)} error{'s' if len(errors) != 1 else ''} on "
        f"{bad_lines} line{'s' if bad_lines != 1 else ''}; nothing was imported"
    )
    if len(shown) < len(errors):
        detail += f" (the first {len(shown)} are listed)"
    return Invalid(detail, code="invalid_csv", extra={"errors": shown, "error_count": len(errors)})


class _Cells:
    """One data row's cells by column name, parsed into values while errors are collected."""

    def __init__(self, line: int, cells: dict[str, str], errors: list[dict[str, Any]]):
        self.line = line
        self.cells = cells
        self.errors = errors
        self.ok = True
        for column, value in cells.items():
            problem = control_character(value)  # a NUL no text column can hold
            if problem:
                self.fail(column, f"{column} {problem}")

    def fail(self, column: str, message: str) -> None:
        self.ok = False
        self.errors.append(row_error(self.line, column, message))

    def text(self, column: str, *, max_length: int) -> str:
        value = self.cells.get(column, "")
        if not value:
            self.fail(column, f"{column} is empty")
        elif len(value) > max_length:
            self.fail(column, f"{column} is longer than {max_length} characters")
        return value

    def integer(self, column: str, *, default: int | None = None) -> int | None:
        value = self.cells.get(column, "")
        if not value:
            if default is None:
                self.fail(column, f"{column} is empty")
            return default
        if not _INTEGER.match(value):
            self.fail(column, f"{column} {value!r} is not a whole number")
            return None
        number = int(value)
        if abs(number) > _MAX_INT32:
            self.fail(column, f"{column} {value!r} is too large")
            return None
        return number

    def decimal(self, column: str, *, required: bool = False) -> Decimal | None:
        value = self.cells.get(column, "")
        if not value:
            if required:
                self.fail(column, f"{column} is empty")
            return None
        if value.lower() in _NOT_FINITE:
            self.fail(column, f"{column} {value!r} is not a finite number")
            return None
        if not _DECIMAL.match(value):
            self.fail(column, f"{column} {value!r} is not a number")
            return None
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
            self.fail(column, f"{column} {value!r} is not a number")
            return None

    def amount(self, column: str, *, below: Decimal) -> Decimal | None:
        """A non-negative decimal of at most 3 places (the columns' scale), under `below`."""
        value = self.decimal(column)
        if value is None:
            return None
        raw = self.cells[column]
        if value < 0:
            self.fail(column, f"{column} {raw} is negative")
            return None
        if value >= below:
            self.fail(column, f"{column} {raw} is too large")
            return None
        # More places would be rounded by the database, and the same file would then look
        # changed on every import.
        if value != value.quantize(_THOUSANDTH):
            self.fail(column, f"{column} {raw} has more than 3 decimal places")
            return None
        return value.quantize(_THOUSANDTH)

    def coordinate(self, column: str, *, limit: int) -> float | None:
        value = self.decimal(column, required=True)
        if value is None:
            return None
        number = float(value)
        if not math.isfinite(number) or not -limit <= number <= limit:
            self.fail(column, f"{column} {self.cells[column]} is outside -{limit}..{limit}")
            return None
        return number

    def metres(self, column: str, *, limit: int) -> float | None:
        """An optional distance in metres, 0..limit."""
        value = self.decimal(column)
        if value is None:
            return None
        if not 0 <= value <= limit:
            self.fail(column, f"{column} {self.cells[column]} is outside 0..{limit} metres")
            return None
        return float(value)

    def timestamp(self, column: str) -> datetime | None:
        value = self.cells.get(column, "")
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(
                column,
                f"{column} {value!r} is not an ISO date or date-time "
                "(such as 2026-10-28 or 2026-10-28T09:30:00+08:00)",
            )
            return None
        return _as_utc(moment)


def _parse_row(cells: _Cells) -> MeterRow | None:
    account_no = cells.text("account_no", max_length=64)
    customer_name = cells.text("customer_name", max_length=200)
    address = cells.text("address", max_length=500)
    meter_no = cells.text("meter_no", max_length=64)
    lat = cells.coordinate("lat", limit=90)
    lon = cells.coordinate("lon", limit=180)
    if lat == 0 and lon == 0:
        # The classic sign of an export with no position: presence could never be checked.
        cells.fail("lat", "lat and lon are both 0: the export has no position for this meter")
    route_code = cells.text("route_code", max_length=64)
    sequence = cells.integer("sequence")
    if sequence is not None and sequence < 0:
        cells.fail("sequence", f"sequence {sequence} is negative")
    digits = cells.integer("digits", default=DEFAULT_DIGITS)
    if digits is not None and not 3 <= digits <= 12:
        cells.fail("digits", f"digits {digits} is outside 3..12")
        digits = None
    multiplier = cells.amount("multiplier", below=Decimal(10) ** 9)
    if multiplier is not None and multiplier == 0:
        cells.fail("multiplier", "multiplier is 0: it must be above 0")
    last_reading = cells.amount("last_reading", below=Decimal(10) ** 12)
    if last_reading is not None and digits is not None and last_reading >= 10**digits:
        cells.fail(
            "last_reading",
            f"last_reading {cells.cells['last_reading']} has more digits than the meter's {digits}",
        )
    last_read_at = cells.timestamp("last_read_at")
    expected_low = cells.amount("expected_low", below=Decimal(10) ** 12)
    expected_high = cells.amount("expected_high", below=Decimal(10) ** 12)
    if expected_low is not None and expected_high is not None and expected_low > expected_high:
        cells.fail(
            "expected_low",
            f"expected_low {cells.cells['expected_low']} is above "
            f"expected_high {cells.cells['expected_high']}",
        )
    grid_code = cells.cells.get("grid_code", "")
    if len(grid_code) > 32:
        cells.fail("grid_code", "grid_code is longer than 32 characters")
    uncertainty = cells.metres("position_uncertainty_m", limit=MAX_POSITION_UNCERTAINTY_M)
    phone = cells.cells.get("phone", "") or None
    if phone is not None and not is_phone(phone):
        cells.fail("phone", f"phone {phone!r} is not a phone number")
    if not cells.ok:
        return None
    assert lat is not None
    assert lon is not None
    assert sequence is not None
    assert digits is not None
    return MeterRow(
        line=cells.line,
        account_no=account_no,
        customer_name=customer_name,
        address=address,
        meter_no=meter_no,
        lat=lat,
        lon=lon,
        route_code=route_code,
        sequence=sequence,
        digits=digits,
        multiplier=multiplier if multiplier is not None else DEFAULT_MULTIPLIER,
        last_reading=last_reading,
        last_read_at=last_read_at,
        expected_low=expected_low,
        expected_high=expected_high,
        grid_code=grid_code or None,
        position_uncertainty_m=uncertainty,
        phone=phone,
    )


# What a row is staged as, in this order: text, "" for no value (imports.py types it).
STAGED_COLUMNS = (
    "line",
    "account_no",
    "customer_name",
    "address",
    "phone",
    "meter_no",
    "route_code",
    "grid_code",
    "sequence",
    "lat",
    "lon",
    "digits",
    "multiplier",
    "last_reading",
    "last_read_at",
    "expected_low",
    "expected_high",
    "position_uncertainty_m",
)
_AT = {name: i for i, name in enumerate(STAGED_COLUMNS)}
_LAT, _LON = _AT["lat"], _AT["lon"]
_DIGITS, _MULTIPLIER, _LAST_READING = _AT["digits"], _AT["multiplier"], _AT["last_reading"]
_LAST_READ_AT, _LOW, _HIGH = _AT["last_read_at"], _AT["expected_low"], _AT["expected_high"]
_UNCERTAINTY = _AT["position_uncertainty_m"]

# The quick check: one pattern over a row's cells joined by U+001F (a control character, so no
# good cell holds it), then a few comparisons. It admits only rows the full check (_parse_row)
# admits, with the same values: every other row - a bad one, or a good one written unusually
# ("+6", "1.5000", "1e3") - goes to the full check, which names what is wrong in its words.
_SEPARATOR = "\x1f"
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# Amounts of at most 15 digits: a float orders them exactly as their decimals.
_AMOUNT = r"(?:\d{1,12}(?:\.\d{1,3})?)?"
# The text columns' lengths (least, most); the other cells' patterns.
_TEXT_LENGTHS = {
    "account_no": (1, 64),
    "customer_name": (1, 200),
    "address": (1, 500),
    "meter_no": (1, 64),
    "route_code": (1, 64),
    "grid_code": (0, 32),
}
_VALUE_CELL = {
    "lat": r"-?(?:[0-8]?\d(?:\.\d+)?|90(?:\.0+)?)",  # -90..90
    "lon": r"-?(?:(?:1[0-7]\d|\d{1,2})(?:\.\d+)?|180(?:\.0+)?)",  # -180..180
    "sequence": r"\d{1,9}",
    "digits": r"(?:[3-9]|1[0-2])?",  # 3..12
    "multiplier": r"(?:\d{1,9}(?:\.\d{1,3})?)?",
    "last_reading": _AMOUNT,
    "expected_low": _AMOUNT,
    "expected_high": _AMOUNT,
    "position_uncertainty_m": r"(?:\d{1,3}(?:\.\d{1,6})?|1000(?:\.0{1,6})?)?",  # 0..1000
}
_PHONE = r"\+?[0-9][0-9 -]{2,30}"  # accounts.is_phone
_QUICK_CELL = {
    **{name: f"{_TEXT}{{{least},{most}}}" for name, (least, most) in _TEXT_LENGTHS.items()},
    **_VALUE_CELL,
    "last_read_at": _TEXT + "*",
    "phone": f"(?:{_PHONE})?",
}
_CACHED_MOMENTS = 4096
_DEFAULT_DIGITS_TEXT = str(DEFAULT_DIGITS)


def _quick_pattern(columns: list[str]) -> re.Pattern[str]:
    cells = [_QUICK_CELL.get(c, _TEXT + "*") for c in columns]
    return re.compile(_SEPARATOR.join(cells) + _SEPARATOR)  # the last cell: "" for absent ones


def _as_utc(moment: datetime) -> datetime:
    # A billing export without a zone means UTC: that is what this system stores.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _quick_values(staged: list[str]) -> bool:
    """The comparisons the pattern cannot make, on cells it matched (so that a number with
    nothing but zeros and its point and sign left once they are stripped is 0); True when the
    row passes them all. Fills in the defaults."""
    if not staged[_LAT].strip("-0.") and not staged[_LON].strip("-0."):
        return False
    digits = staged[_DIGITS]
    if not digits:
        staged[_DIGITS] = digits = _DEFAULT_DIGITS_TEXT
    multiplier = staged[_MULTIPLIER]
    if not multiplier:
        staged[_MULTIPLIER] = "1"
    elif not multiplier.strip("0."):
        return False
    last = staged[_LAST_READING]
    if last and len(last.partition(".")[0].lstrip("0")) > int(digits):
        return False
    low, high = staged[_LOW], staged[_HIGH]
    return not (low and high and float(low) > float(high))


def _staged_row(row: MeterRow, moment_text: Callable[[datetime], str]) -> list[str]:
    """A row the full check admitted, as the quick check would have staged it."""

    def text(value: object) -> str:
        return "" if value is None else str(value)

    return [
        str(row.line),
        row.account_no,
        row.customer_name,
        row.address,
        text(row.phone),
        row.meter_no,
        row.route_code,
        text(row.grid_code),
        str(row.sequence),
        repr(row.lat),
        repr(row.lon),
        str(row.digits),
        str(row.multiplier),
        text(row.last_reading),
        "" if row.last_read_at is None else moment_text(row.last_read_at),
        text(row.expected_low),
        text(row.expected_high),
        "" if row.position_uncertainty_m is None else repr(row.position_uncertainty_m),
    ]


def _read_header(reader: Any, errors: list[dict[str, Any]]) -> list[str] | None:
    """The file's column names (trimmed, lower case) from its first line that is not blank, or
    None when they will not do (appended to `errors`)."""
    try:
        header: list[str] = []
        while not any(h.strip() for h in header):
            header = next(reader)
    except StopIteration:
        errors.append(row_error(1, None, "the file is empty: the first line must name the columns"))
        return None
    except csv.Error as exc:
        errors.append(row_error(reader.line_num, None, f"not readable as CSV: {exc}"))
        return None
    header[0] = header[0].removeprefix("\ufeff")
    columns = [h.strip().lower() for h in header]
    bad_header = False
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            errors.append(row_error(reader.line_num, name, f"the header has no {name} column"))
            bad_header = True
    for name in sorted({c for c in columns if columns.count(c) > 1}):
        errors.append(row_error(reader.line_num, name, f"the header names {name} more than once"))
        bad_header = True
    return None if bad_header else columns


def read_meter_csv(
    lines: Iterable[str],
    errors: list[dict[str, Any]],
    *,
    moment_text: Callable[[datetime], str] = datetime.isoformat,
    refused: list[tuple[int, str]] | None = None,
) -> Iterator[list[str]]:
    """The rows of the file good on their own, one at a time as they are read (the file is
    never held whole, nor anything of the rows already read), as text in STAGED_COLUMNS' order
    ("" for no value, defaults filled in, a last_read_at in UTC written by `moment_text`);
    every bad line's errors are appended to `errors` (line numbers as in an editor). Whether
    rows agree with each other (a meter named twice, an account or a route described two ways)
    is checked on the staged rows (imports.meters_named_twice, rows_that_disagree); so that a
    good row repeating the meter of a bad one is named too, each bad row's line and meter_no
    (when it has one) is appended to `refused`."""
    reader = csv.reader(lines)
    columns = _read_header(reader, errors)
    if columns is None:
        return
    header_line = reader.line_num
    quick = _quick_pattern(columns).fullmatch
    # A row's cells, then "" (what an absent optional column reads as), picked in staged order.
    absent = len(columns)
    pick = itemgetter(*(columns.index(c) if c in columns else absent for c in STAGED_COLUMNS[1:]))
    meter_at = columns.index("meter_no")
    moments: dict[str, str] = {}
    end_of_previous = header_line
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(row_error(end_of_previous + 1, None, f"not readable as CSV: {exc}"))
            break
        # A quoted value may span lines: a record starts on the line after the previous one ended.
        line, end_of_previous = end_of_previous + 1, reader.line_num
        if len(fields) != len(columns):
            if not any(f.strip() for f in fields):
                continue
            errors.append(
                row_error(
                    line,
                    None,
                    f"the line has {len(fields)} values but the header "
                    f"has {len(columns)} columns (an unquoted comma?)",
                )
            )
            continue
        cells = [f.strip() for f in fields]
        staged: list[str] | None = None
        if quick(_SEPARATOR.join(cells) + _SEPARATOR):
            staged = [str(line), *pick([*cells, ""])]
            moment = staged[_LAST_READ_AT]
            if moment:
                known = moments.get(moment)
                if known is None:
                    try:
                        known = moment_text(_as_utc(datetime.fromisoformat(moment)))
                    except ValueError:
                        known = ""
                    if len(moments) >= _CACHED_MOMENTS:
                        moments.clear()
                    moments[moment] = known
                staged[_LAST_READ_AT] = known
                if not known:
                    staged = None
            if staged is not None and not _quick_values(staged):
                staged = None
        if staged is None:
            if not any(cells):
                continue
            row = _parse_row(_Cells(line, dict(zip(columns, cells, strict=True)), errors))
            if row is None:
                if refused is not None and cells[meter_at]:
                    refused.append((line, cells[meter_at]))
                continue
            staged = _staged_row(row, moment_text)
        yield staged


# --- plain files, checked a block of lines at a time ------------------------------------------
# Most exports are plain: a line a meter, no quotes, each cell as the checks want it. Such a
# file is checked by one pattern over each block of ~4,000 lines and handed to PostgreSQL's
# COPY as it stands (its commas turned into PLAIN_DELIMITER, each line's number appended), with
# no Python per row: a third of the first load's time (bench/README.md). The pattern admits
# only what the quick check admits, written the one way the row-by-row reading reads the same:
# a cell with no space around it, a date-time in a form PostgreSQL reads as Python does. The
# comparisons the quick check makes between cells (_quick_values) are left to the database
# (imports._compared). Anything else - a quote, a blank line, a cell out of pattern -
# raises NotPlainError, and the caller reads the file again row by row, which names what is wrong.

PLAIN_DELIMITER = _SEPARATOR
# Characters read at a time: ~4,000 lines of a utility's file.
PLAIN_BLOCK = 1 << 19
# Any character but a control one or a quote (a line end inside a cell, or a quote, is
# written with quotes around and inside the cell: for the row-by-row reading); between quotes,
# also PLAIN_DELIMITER, which stands there for a comma.
_PLAIN_TEXT = r"[^\x00-\x08\x0a-\x1f\x7f\"]"
_PLAIN_QUOTED = r"[^\x00-\x08\x0a-\x1e\x7f\"]"
_NO_SPACE_AFTER, _NO_SPACE_BEFORE = r"(?!\s)", r"(?<!\s)"  # \s: what str.strip() removes
# ISO dates of this century and date-times, with or without seconds, fractions and a zone
# (hours within the world's: PostgreSQL refuses beyond 15). Only days that exist: every match
# is a time datetime.fromisoformat reads, and PostgreSQL the same (test_meter_csv).
_PLAIN_DAY = (
    r"20\d\d-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)|20(?:[02468][048]|[13579][26])-02-29"
)
_PLAIN_MOMENT = (
    f"(?:{_PLAIN_DAY})"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
    r"(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)?)?"
)


class NotPlainError(Exception):
    """The file is not plain (see above) from this block on: read it row by row."""


def _plain_cell(column: str) -> str:
    """A cell of `column` in a plain block, its commas turned into PLAIN_DELIMITER: as the quick
    check admits it, with nothing around it that csv.reader or str.strip() would take off; or
    the same between quotes (where it may hold a comma, now a PLAIN_DELIMITER)."""
    if column in _TEXT_LENGTHS:
        least, most = _TEXT_LENGTHS[column]
        cell = f"{_NO_SPACE_AFTER}{{text}}{{1,{most}}}+{_NO_SPACE_BEFORE}"
        if not least:
            cell = f"(?:{cell})?"
    elif column in _VALUE_CELL:
        cell = _VALUE_CELL[column]
    elif column == "phone":
        cell = f"(?:{_PHONE}{_NO_SPACE_BEFORE})?"
    elif column == "last_read_at":
        cell = f"(?:{_PLAIN_MOMENT})?"
    else:
        cell = "{text}*+"  # a column this system does not read
    quoted, unquoted = (cell.replace("{text}", text) for text in (_PLAIN_QUOTED, _PLAIN_TEXT))
    return f'(?:"{quoted}"|{unquoted})'


def _unquoted(block: str) -> str:
    """A block the plain pattern matched, its quoted cells as csv.reader reads them: what is
    between the quotes, a comma where there was one (no step of Python per cell: a utility's
    file may quote an address a line)."""
    if '"' not in block:
        return block
    parts = block.split('"')  # outside the quotes, inside, outside, ...
    parts[1::2] = '"'.join(parts[1::2]).replace(PLAIN_DELIMITER, ",").split('"')
    return "".join(parts)


def plain_meter_csv(text: IO[str]) -> tuple[list[str], Iterator[str]]:
    """A plain file's columns (as read_meter_csv names them) and its lines as blocks of COPY's
    text format: the cells split by PLAIN_DELIMITER, each line's number after its last cell, ""
    for no value. Raises NotPlainError, from here or from the blocks, when the file is not plain."""
    first = text.readline()
    errors: list[dict[str, Any]] = []
    columns = _read_header(csv.reader([first]), errors)
    # A quote left open would take the next lines into the header: csv.reader, given this
    # line alone, ends the cell with the line end.
    if columns is None or any("\n" in cell for cell in next(csv.reader([first]))):
        raise NotPlainError
    return columns, _plain_blocks(text, columns)


def _plain_blocks(text: IO[str], columns: list[str]) -> Iterator[str]:
    block_pattern = re.compile(
        "(?:" + PLAIN_DELIMITER.join(_plain_cell(c) for c in columns) + "\n)*"
    ).fullmatch
    line = 2  # the first line after the header
    rest = ""
    while True:
        chunk = text.read(PLAIN_BLOCK)
        block = rest + chunk
        if chunk:
            cut = block.rfind("\n") + 1
            if not cut:
                raise NotPlainError  # a line longer than a block: not a meter's
            block, rest = block[:cut], block[cut:]
        else:
            block += "\n"  # the last line may have no line end
        if "\r" in block:
            block = block.replace("\r\n", "\n")
        # Blank lines at the block's end wait for the next: at the file's end they say nothing.
        body = block.rstrip("\n")
        if len(body) < len(block) - 1 or not body:
            block, rest = body + "\n" if body else "", block[len(body) + 1 :] + rest
        if PLAIN_DELIMITER in block:
            raise NotPlainError  # a cell holding it would split in two
        block = block.replace(",", PLAIN_DELIMITER)
        if block_pattern(block) is None:
            raise NotPlainError
        block = _unquoted(block)
        if "\\" in block:
            block = block.replace("\\", "\\\\")  # COPY's escape character
        lines = block.split("\n")
        lines.pop()  # after the last line end
        numbers = map(str, range(line, line + len(lines)))
        line += len(lines)
        if lines:
            # Each line, its number and its end, joined without a step of Python per line.
            yield "".join(
                chain.from_iterable(zip(lines, repeat(PLAIN_DELIMITER), numbers, repeat("\n")))
            )
        if not chunk:
            return
