"""The meters CSV's quick check agrees with its full check: it stages exactly the rows the full
check admits, with the same values, and a row it refuses gets the full check's words."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.catalog import meter_csv
from server.catalog.meter_csv import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    STAGED_COLUMNS,
    read_meter_csv,
)

NUMBERS = ("sequence", "digits", "multiplier", "last_reading", "expected_low", "expected_high")
FLOATS = ("lat", "lon", "position_uncertainty_m")
AMOUNTS = ("", "0", "0.5", ".5", "12.", "999999", "1000000", "999999.999", "1000000.5",
           "000999999", "1.2345", "1.2340", "999999999999.999", "1000000000000", "-1", "1E2",
           "Infinity", "nan", " 7 ", "49.999", "50.001", "400.001")  # fmt: skip
TEXTS = ("A1", "", "A" * 64, "A" * 65, "a\x00b", "a\x01b", "tab\there", "two\nlines",
         "back\\slash", " padded ", "\u4e1c\u8857", "\u3000\u4e1c", "a, b", ",a", 'say "hi"',
         "a\x1fb", "a\u2028b", "x\x85")  # fmt: skip
# Per column: good values, values written unusually but good, and bad ones.
CELLS: dict[str, tuple[str, ...]] = {
    "account_no": TEXTS,
    "customer_name": (*TEXTS, "N" * 200, "N" * 201),
    "address": (*TEXTS, "S" * 500, "S" * 501),
    "meter_no": TEXTS,
    "route_code": TEXTS,
    "lat": ("30.274100", "90", "90.0", "90.5", "-90", "-90.01", "0", "-0", "0.000", "+30",
            "1e1", "3.0e1", "090", "89.9999999999999999", "nan", "inf", "", "abc"),
    "lon": ("120.155100", "180", "180.00", "180.01", "-180", "179.999", "200", "0", "0.0",
            "1E2", "", "east"),
    "sequence": ("0", "10", "007", "-1", "+5", "999999999", "2147483647", "2147483648",
                 "1.5", ""),
    "digits": ("", "3", "6", "12", "13", "2", "0", "06", "+6", "-6", "1e1", "six"),
    "multiplier": ("", "1", "0", "0.0", "0.000", "00", "1.5", "1.5000", "1.0001",
                   "999999999.999", "1000000000", "-1", ".5", "5.", "1e3", "nan"),
    "last_reading": AMOUNTS,
    "expected_low": AMOUNTS,
    "expected_high": AMOUNTS,
    "last_read_at": ("", "2026-10-25", "2026-10-25T09:00:00", "2026-10-25T09:00:00+08:00",
                     "2026-10-25 09:00:00.123456", "2026-10-25T09:00:00Z", "20261025",
                     "2026-13-01", "yesterday", "2026-02-29", "2028-02-29T00:00", "1999-12-31",
                     "2026-10-25T09:00+16:00", "2026-10-25T24:00", "2026-10-25T09"),
    "grid_code": ("", "G1", "G" * 32, "G" * 33, "G\x7f"),
    "position_uncertainty_m": ("", "0", "5.5", "1000", "1000.0", "1000.0000001", "1000.5",
                               "999.999999", "0999", "1001", "-0", "1e2", "-1"),
    "phone": ("", "13800138000", "+86 571 1234", "0571-8765-4321", " 138 0013 ", "=1+1", "12"),
    "region": ("", "anything", "bad\x00"),  # a column the import does not know is not read
}  # fmt: skip


def _lines(text: str) -> list[str]:
    """The lines of a file as the import reads them (only \\n and \\r end a line)."""
    return io.StringIO(text, newline="").readlines()


def _csv(columns: list[str], cells: list[str]) -> list[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerow(cells)
    return _lines(out.getvalue())


def _full(columns: list[str], cells: list[str]) -> tuple[list[str] | None, list[dict[str, object]]]:
    """What the full check alone makes of a data row on line 2."""
    errors: list[dict[str, object]] = []
    checked = meter_csv._Cells(
        2, {c: v.strip() for c, v in zip(columns, cells, strict=True)}, errors
    )
    row = meter_csv._parse_row(checked)
    staged = None if row is None else meter_csv._staged_row(row, meter_csv.datetime.isoformat)
    return staged, errors


def _same(column: str, quick: str, full: str) -> bool:
    if column in NUMBERS and quick and full:
        return Decimal(quick) == Decimal(full)
    if column in FLOATS and quick and full:
        return float(quick) == float(full)
    return quick == full


GOOD = {c: v[0] for c, v in CELLS.items()} | {
    "customer_name": "Customer 7",
    "address": "8 Riverside Road",
    "meter_no": "M0007",
    "route_code": "R-A",
    "digits": "6",
    "multiplier": "1",
    "last_reading": "1007.5",
    "last_read_at": "2026-10-25T09:00:00",
    "expected_low": "50",
    "expected_high": "400",
    "grid_code": "G1",
    "position_uncertainty_m": "5.5",
    "phone": "13800138000",
}
# A good row with up to three cells changed to another of their column's values.
ROWS = st.lists(
    st.sampled_from(list(CELLS)).flatmap(
        lambda c: st.tuples(st.just(c), st.sampled_from(CELLS[c]))
    ),
    max_size=3,
).map(lambda changes: GOOD | dict(changes))


@settings(max_examples=1500, deadline=None)
@given(ROWS, st.sets(st.sampled_from((*OPTIONAL_COLUMNS, "region"))))
# The checks of two cells together, each just on both sides of its edge.
@example(GOOD | {"lat": "0", "lon": "0.0"}, set())
@example(GOOD | {"lat": "-0.000", "lon": "0"}, set())
@example(GOOD | {"lat": "0", "lon": "0.001"}, set())
@example(GOOD | {"expected_low": "0.5", "expected_high": "0"}, set())
@example(GOOD | {"expected_low": "400.001", "expected_high": "400"}, set())
@example(GOOD | {"expected_low": "400", "expected_high": "400"}, set())
@example(GOOD | {"digits": "3", "last_reading": "999.999"}, set())
@example(GOOD | {"digits": "3", "last_reading": "1000"}, set())
@example(GOOD | {"digits": "12", "last_reading": "999999999999.999"}, set())
@example(GOOD | {"digits": "4", "last_reading": "0001000"}, set())
@example(GOOD | {"last_reading": "1000000"}, {"digits"})
def test_the_quick_check_stages_what_the_full_check_admits_with_the_same_values(
    values: dict[str, str], left_out: set[str]
) -> None:
    columns = [c for c in CELLS if c in REQUIRED_COLUMNS or c not in left_out]
    cells = [values[c] for c in columns]
    errors: list[dict[str, object]] = []
    staged = list(read_meter_csv(_csv(columns, cells), errors))
    expected, expected_errors = _full(columns, cells)
    assert errors == expected_errors
    if expected is None:
        assert staged == []
    else:
        assert len(staged) == 1
        different = [
            (c, q, f)
            for c, q, f in zip(STAGED_COLUMNS, staged[0], expected, strict=True)
            if not _same(c, q, f)
        ]
        assert different == []


def test_a_good_row_in_the_usual_form_takes_the_quick_check(monkeypatch) -> None:
    """The full check is for what the quick one refuses: a usual good row never reaches it."""

    def refuse(*_args: object) -> None:
        raise AssertionError("the full check ran")

    monkeypatch.setattr(meter_csv, "_parse_row", refuse)
    columns = list(CELLS)
    cells = [CELLS[c][0] if c != "phone" else "13800138000" for c in columns]
    errors: list[dict[str, object]] = []
    staged = list(read_meter_csv(_csv(columns, cells), errors))
    assert errors == []
    assert [dict(zip(STAGED_COLUMNS, s, strict=True)) for s in staged] == [
        {
            "line": "2",
            "account_no": "A1",
            "customer_name": "A1",
            "address": "A1",
            "phone": "13800138000",
            "meter_no": "A1",
            "route_code": "A1",
            "grid_code": "",
            "sequence": "0",
            "lat": "30.274100",
            "lon": "120.155100",
            "digits": "6",
            "multiplier": "1",
            "last_reading": "",
            "last_read_at": "",
            "expected_low": "",
            "expected_high": "",
            "position_uncertainty_m": "",
        }
    ]


def _plain(lines: list[str]) -> list[dict[str, str]] | None:
    """What the block check makes of a file: each line's cells by column, as COPY reads them;
    None when it is not plain."""
    try:
        columns, blocks = meter_csv.plain_meter_csv(io.StringIO("".join(lines), newline=""))
        staged = "".join(blocks)
    except meter_csv.NotPlainError:
        return None
    separator = meter_csv.PLAIN_DELIMITER
    return [
        dict(zip([*columns, "line"], line.replace("\\\\", "\\").split(separator), strict=True))
        for line in staged.split("\n")[:-1]
    ]


# The rules between cells that the database checks for a plain file (imports._compared),
# by the words of the full check.
COMPARED = (
    "are both 0",
    "multiplier is 0",
    "more digits than the meter's",
    "is above expected_high",
)


@settings(max_examples=1500, deadline=None)
@given(
    ROWS,
    st.sets(st.sampled_from((*OPTIONAL_COLUMNS, "region"))),
    st.sampled_from((csv.QUOTE_MINIMAL, csv.QUOTE_ALL)),
    st.sampled_from(("\n", "\r\n")),
)
@example(GOOD, set(), csv.QUOTE_MINIMAL, "\n")
@example(GOOD | {"address": "a, b"}, set(), csv.QUOTE_MINIMAL, "\r\n")
@example(GOOD | {"lat": "0", "lon": "0.0"}, set(), csv.QUOTE_ALL, "\n")
@example(GOOD | {"last_read_at": "2028-02-29T00:00"}, set(), csv.QUOTE_MINIMAL, "\n")
def test_the_block_check_admits_only_rows_the_quick_check_stages_with_the_same_values(
    values: dict[str, str], left_out: set[str], quoting: int, line_end: str
) -> None:
    columns = [c for c in CELLS if c in REQUIRED_COLUMNS or c not in left_out]
    out = io.StringIO()
    out.write(",".join(columns) + line_end)
    csv.writer(out, quoting=quoting, lineterminator=line_end).writerow(values[c] for c in columns)
    lines = _lines(out.getvalue())

    plain = _plain(lines)
    errors: list[dict[str, object]] = []
    staged = list(read_meter_csv(lines, errors))
    if plain is None:
        return
    assert len(plain) == 1
    if not staged:  # refused: only for what the database checks
        assert errors
        assert all(any(words in str(e["error"]) for words in COMPARED) for e in errors)
        return
    quick = dict(zip(STAGED_COLUMNS, staged[0], strict=True))
    as_copied = {c: plain[0].get(c, "") for c in STAGED_COLUMNS}
    # What the database fills in or reads: the defaults, a time without a zone as UTC.
    as_copied["digits"] = as_copied["digits"] or str(meter_csv.DEFAULT_DIGITS)
    as_copied["multiplier"] = as_copied["multiplier"] or "1"
    if as_copied["last_read_at"]:
        moment = meter_csv._as_utc(datetime.fromisoformat(as_copied["last_read_at"]))
        as_copied["last_read_at"] = moment.isoformat()
    assert as_copied == quick


def test_a_plain_file_s_usual_row_passes_the_block_check() -> None:
    columns = list(CELLS)
    lines = _csv(columns, [GOOD[c] for c in columns])
    assert _plain(lines) == [{**GOOD, "line": "2"}]
    assert _plain(lines[:1]) == []  # no row


def test_a_plain_date_is_one_that_exists_and_python_reads_them_all() -> None:
    for year in range(1999, 2101):
        for month in range(14):
            for day in range(33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    exists = date(year, month, day).year in range(2000, 2100)
                except ValueError:
                    exists = False
                assert bool(meter_csv.re.fullmatch(meter_csv._PLAIN_MOMENT, text)) == exists, text
    for text in ("2026-10-25T09:00", "2026-10-25 09:00:00.5", "2026-10-25T23:59:59.999999+14:00",
                 "2026-10-25T00:00:00-12:45", "2026-10-25T09:00Z"):  # fmt: skip
        assert meter_csv.re.fullmatch(meter_csv._PLAIN_MOMENT, text)
        assert datetime.fromisoformat(text)
    for text in ("2026-10-25T24:00", "2026-10-25T09", "2026-10-25Z", "2026-10-25T09:00+15:00",
                 "2026-10-25T09:00:00.1234567", "2026-1-5", "2100-01-01"):  # fmt: skip
        assert not meter_csv.re.fullmatch(meter_csv._PLAIN_MOMENT, text)
