"""Loading meters from a billing-system CSV: every row checked first, then all upserted, or none."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from common.clock import Clock
from server.catalog import meter_csv
from server.catalog.imports import WRITING_STEPS, import_meters_csv
from server.catalog.meter_csv import REQUIRED_COLUMNS
from server.core.changes import committed_change_seq
from server.core.config import Settings
from server.core.errors import Invalid
from server.models import Account, AdminLog, Grid, Meter, Route, Withdrawal
from tests.factories import assign, auth, imported, make_user

IMPORT = "/api/v1/admin/meters/import"
COLUMNS = (
    *REQUIRED_COLUMNS,
    "digits",
    "multiplier",
    "last_reading",
    "last_read_at",
    "expected_low",
    "expected_high",
    "grid_code",
)


def row(i: int, **overrides: Any) -> dict[str, Any]:
    """A good row for meter `i`: two meters per account, on route R-A (a street going north)."""
    values: dict[str, Any] = {
        "account_no": f"A{i // 2:04d}",
        "customer_name": f"Customer {i // 2}",
        "address": f"{i // 2 + 1} Riverside Road",
        "meter_no": f"M{i:04d}",
        "lat": f"{30.2741 + i * 0.0004:.6f}",
        "lon": "120.155100",
        "route_code": "R-A",
        "sequence": str((i + 1) * 10),
        "digits": "6",
        "multiplier": "1",
        "last_reading": f"{1000 + i}.5",
        "last_read_at": "2026-10-25T09:00:00",
        "expected_low": "50",
        "expected_high": "400",
        "grid_code": "G1",
    }
    values.update(overrides)
    return values


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    lines = [",".join(columns)]
    lines += [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def meters_by_no(session: Session) -> dict[str, Meter]:
    meters = {m.meter_no: m for m in session.exec(select(Meter))}
    session.commit()  # end the read, so the next one sees what was written meanwhile
    return meters


def seqs(session: Session) -> dict[str, int]:
    """Each meter's change_seq, by meter_no (values: the ORM objects themselves get refreshed)."""
    return {no: m.change_seq for no, m in meters_by_no(session).items()}


def counts(session: Session) -> dict[str, int]:
    """How many rows each table the import writes holds, and the change counter."""
    found = {
        model.__name__: session.exec(select(func.count()).select_from(model)).one()
        for model in (Account, Route, Meter, Grid, Withdrawal, AdminLog)
    }
    found["change_seq"] = committed_change_seq(session)
    session.commit()
    return found


def errors_of(session: Session, text: str) -> list[dict[str, Any]]:
    with pytest.raises(Invalid) as caught:
        imported(session, text)
    assert caught.value.code == "invalid_csv"
    assert caught.value.status_code == 422
    errors: list[dict[str, Any]] = caught.value.extra["errors"]
    return errors


def test_good_import_creates_accounts_routes_meters_and_grid(session: Session) -> None:
    rows = [row(0), row(1), row(2, route_code="R-B", grid_code="G2")]
    report = imported(session, csv_text(rows))

    assert report.as_dict() == {
        "rows": 3,
        "accounts_created": 2,
        "accounts_updated": 0,
        "meters_created": 3,
        "meters_updated": 0,
        "unchanged": 0,
        "routes_created": 2,
        "routes_updated": 0,
        "meters_moved": 0,
    }
    grids = {g.code: g.id for g in session.exec(select(Grid))}
    assert set(grids) == {"G1", "G2"}
    routes = {r.code: r for r in session.exec(select(Route))}
    assert routes["R-A"].grid_id == grids["G1"]
    assert routes["R-B"].grid_id == grids["G2"]
    accounts = {a.account_no: a for a in session.exec(select(Account))}
    assert accounts["A0000"].customer_name == "Customer 0"
    meters = meters_by_no(session)
    m0 = meters["M0000"]
    assert m0.account_id == meters["M0001"].account_id == accounts["A0000"].id
    assert m0.route_id == routes["R-A"].id
    assert (m0.sequence, m0.lat, m0.lon, m0.digits) == (10, 30.2741, 120.1551, 6)
    assert m0.multiplier == Decimal(1)
    assert m0.last_reading == Decimal("1000.5")
    assert m0.last_read_at == datetime(2026, 10, 25, 9, 0, tzinfo=UTC)
    assert (m0.expected_low, m0.expected_high) == (Decimal(50), Decimal(400))
    # One change number for the whole import, so a pull sees all of it or none of it.
    assert {m.change_seq for m in meters.values()} == {committed_change_seq(session)}
    audit = session.exec(select(AdminLog).where(AdminLog.action == "meters.import")).one()
    assert audit.detail is not None
    assert audit.detail["meters_created"] == 3


def test_optional_columns_may_be_left_out_and_take_their_defaults(session: Session) -> None:
    text = csv_text([row(0)], columns=REQUIRED_COLUMNS)
    imported(session, text)

    meter = meters_by_no(session)["M0000"]
    assert (meter.digits, meter.multiplier) == (6, Decimal(1))
    assert meter.last_reading is None
    assert meter.last_read_at is None
    assert session.exec(select(Route)).one().grid_id is None


def test_reimporting_the_same_file_changes_nothing(session: Session) -> None:
    text = csv_text([row(i) for i in range(6)])
    imported(session, text)
    before = {no: (m.change_seq, m.updated_at) for no, m in meters_by_no(session).items()}
    assert len(before) == 6
    seq_before = committed_change_seq(session)
    session.commit()

    report = imported(session, text)

    assert report.unchanged == report.rows == 6
    assert report.meters_created == report.meters_updated == report.accounts_updated == 0
    assert report.accounts_created == report.routes_created == 0
    after = {no: (m.change_seq, m.updated_at) for no, m in meters_by_no(session).items()}
    assert after == before
    assert committed_change_seq(session) == seq_before


def test_a_changed_row_updates_the_meter_and_bumps_its_change_seq(
    session: Session, clock: Clock
) -> None:
    rows = [row(i) for i in range(4)]
    imported(session, csv_text(rows))
    before = seqs(session)
    updated_before = meters_by_no(session)["M0002"].updated_at
    clock.advance(timedelta(minutes=1))  # the billing system's next export

    rows[2] = row(2, lat="30.275500", multiplier="40", expected_high="9000")
    report = imported(session, csv_text(rows))

    assert (report.meters_updated, report.unchanged) == (1, 3)
    changed = meters_by_no(session)["M0002"]
    assert (changed.lat, changed.multiplier, changed.expected_high) == (
        30.2755,
        Decimal(40),
        Decimal(9000),
    )
    assert changed.updated_at == updated_before + timedelta(minutes=1)
    after = seqs(session)
    assert after["M0002"] > before["M0002"]
    assert {no: after[no] for no in ("M0000", "M0001", "M0003")} == {
        no: before[no] for no in ("M0000", "M0001", "M0003")
    }


def test_renaming_an_account_bumps_every_meter_of_it(session: Session) -> None:
    rows = [row(i) for i in range(4)]
    imported(session, csv_text(rows))
    before = seqs(session)

    # Meters 2 and 3 share account A0001; the handheld shows its name with each of them.
    rows[2] = row(2, customer_name="New Owner")
    rows[3] = row(3, customer_name="New Owner")
    report = imported(session, csv_text(rows))

    assert (report.accounts_updated, report.meters_updated, report.unchanged) == (1, 2, 2)
    account = session.exec(select(Account).where(Account.account_no == "A0001")).one()
    assert account.customer_name == "New Owner"
    after = seqs(session)
    assert after["M0002"] > before["M0002"]
    assert after["M0003"] == after["M0002"]
    assert after["M0000"] == before["M0000"]


def test_a_route_given_a_grid_code_moves_to_that_grid(session: Session) -> None:
    imported(session, csv_text([row(0)]))
    report = imported(session, csv_text([row(0, grid_code="G9")]))

    assert (report.routes_updated, report.unchanged) == (1, 1)
    grid = session.exec(select(Grid).where(Grid.code == "G9")).one()
    assert session.exec(select(Route)).one().grid_id == grid.id


def test_a_meter_moving_route_is_withdrawn_from_the_open_assignment_of_its_old_route(
    session: Session, settings: Settings
) -> None:
    rows = [row(0), row(1), row(2, route_code="R-B")]
    imported(session, csv_text(rows))
    reader = make_user(session, settings, "reader1", "reader", "G1")
    assignment = assign(session, "R-A", "reader1")
    moved_id = meters_by_no(session)["M0001"].id

    rows[1] = row(1, route_code="R-B", sequence="5")
    report = imported(session, csv_text(rows))

    assert (report.meters_moved, report.meters_updated) == (1, 1)
    withdrawal = session.exec(select(Withdrawal)).one()
    assert (withdrawal.user_id, withdrawal.object_type, withdrawal.object_id) == (
        reader.id,
        "meter",
        str(moved_id),
    )
    assert withdrawal.assignment_id == assignment.id
    assert withdrawal.change_seq == meters_by_no(session)["M0001"].change_seq


def test_a_bad_file_names_every_bad_row_by_line_and_writes_nothing(session: Session) -> None:
    imported(session, csv_text([row(0), row(1)]))
    before = counts(session)
    rows = [
        row(0, customer_name="Renamed"),  # line 2: good, and would change an account
        row(2, lat="91"),  # line 3
        row(3),  # line 4: good
        row(4, sequence="ten"),  # line 5
        row(5, meter_no="M0003"),  # line 6: same meter as line 4
        row(6, lon="abc", last_reading="-1"),  # line 7: two errors on one line
    ]

    errors = errors_of(session, csv_text(rows))

    assert [(e["line"], e["column"]) for e in errors] == [
        (3, "lat"),
        (5, "sequence"),
        (6, "meter_no"),
        (7, "lon"),
        (7, "last_reading"),
    ]
    assert "91" in errors[0]["error"]
    assert "line 4" in errors[2]["error"]
    assert counts(session) == before
    assert meters_by_no(session)["M0000"].change_seq == before["change_seq"]


def test_rows_contradicting_an_earlier_line_are_each_named_with_that_line(
    session: Session,
) -> None:
    rows = [
        row(0),  # line 2
        row(1),  # line 3: account A0000 again, as line 2 has it
        row(2, route_code="R-B", grid_code="G2"),  # line 4
        row(3, route_code="R-B", grid_code=""),  # line 5: no grid_code says nothing
        row(4, meter_no="M0000"),  # line 6: the meter of line 2
        row(5, account_no="A0000", customer_name="Other"),  # line 7: and another address
        row(6, route_code="R-B", grid_code="G3"),  # line 8: R-B is in G2 on line 4
        row(7, meter_no="M0000"),  # line 9: the meter of line 2 again
        row(8, lat="91"),  # line 10: bad on its own
        row(9, meter_no="M0008"),  # line 11: the meter of line 10
        row(10, meter_no="M\x00"),  # line 12: a meter_no no database holds
        row(11, meter_no="M\x00"),  # line 13: and again
    ]

    errors = errors_of(session, csv_text(rows))

    assert [(e["line"], e["column"], e["error"]) for e in errors if e["line"] < 12] == [
        (6, "meter_no", "meter_no M0000 is also on line 2"),
        (7, "customer_name", "account_no A0000 has another customer_name on line 2"),
        (7, "address", "account_no A0000 has another address on line 2"),
        (8, "grid_code", "route_code R-B has grid_code G2 on line 4"),
        (9, "meter_no", "meter_no M0000 is also on line 2"),
        (10, "lat", "lat 91 is outside -90..90"),
        (11, "meter_no", "meter_no M0008 is also on line 10"),
    ]
    # Each bad on its own (a NUL is refused before it could be compared).
    assert [(e["line"], e["column"]) for e in errors if e["line"] >= 12] == [
        (12, "meter_no"),
        (13, "meter_no"),
    ]
    assert counts(session)["Meter"] == counts(session)["Account"] == 0


def test_a_first_load_whose_only_fault_is_a_meter_named_twice_names_it_and_writes_nothing(
    session: Session,
) -> None:
    """Into an empty table the meters' unique constraint, made again after the insert, finds
    the second line (the grouping runs only then): the file is refused as any other, every
    such line named."""
    before = counts(session)
    rows = [row(i) for i in range(6)]
    rows += [row(6, meter_no="M0001"), row(7, meter_no="M0004")]  # lines 8 and 9

    errors = errors_of(session, csv_text(rows))

    assert [(e["line"], e["column"], e["error"]) for e in errors] == [
        (8, "meter_no", "meter_no M0001 is also on line 3"),
        (9, "meter_no", "meter_no M0004 is also on line 6"),
    ]
    assert counts(session) == before
    assert meters_by_no(session) == {}
    if session.get_bind().dialect.name == "postgresql":  # dropped for the insert: back
        assert len(table_keys(session)) == 7
    imported(session, csv_text(rows[:6]))  # the same connection imports again
    assert len(meters_by_no(session)) == 6


def test_a_missing_required_column_is_named_once(session: Session) -> None:
    columns = tuple(c for c in COLUMNS if c != "lat")
    errors = errors_of(session, csv_text([row(i) for i in range(50)], columns=columns))

    assert errors == [{"line": 1, "column": "lat", "error": "the header has no lat column"}]


@pytest.mark.parametrize(
    ("overrides", "column", "words"),
    [
        ({"lat": "-90.5"}, "lat", "outside -90..90"),
        ({"lon": "180.01"}, "lon", "outside -180..180"),
        ({"lat": "NaN"}, "lat", "not a finite number"),
        ({"lon": "inf"}, "lon", "not a finite number"),
        ({"lat": '"30,27"'}, "lat", "not a number"),
        ({"lat": "0", "lon": "0"}, "lat", "no position"),
        ({"account_no": ""}, "account_no", "empty"),
        ({"sequence": "1.5"}, "sequence", "not a whole number"),
        ({"digits": "2"}, "digits", "outside 3..12"),
        ({"multiplier": "0"}, "multiplier", "above 0"),
        ({"digits": "4", "last_reading": "10000"}, "last_reading", "more digits"),
        ({"last_reading": "12.3456"}, "last_reading", "3 decimal places"),
        ({"last_read_at": "25/10/2026"}, "last_read_at", "ISO date"),
        ({"expected_low": "500", "expected_high": "100"}, "expected_low", "above expected_high"),
        ({"address": "Other Road 1"}, "address", "another address on line 2"),
        ({"position_uncertainty_m": "-5"}, "position_uncertainty_m", "outside 0..1000"),
        ({"position_uncertainty_m": "5000"}, "position_uncertainty_m", "outside 0..1000"),
        ({"position_uncertainty_m": "about 20"}, "position_uncertainty_m", "not a number"),
        ({"position_uncertainty_m": "nan"}, "position_uncertainty_m", "not a finite number"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_a_bad_value_is_named_by_line_and_column(
    session: Session, overrides: dict[str, str], column: str, words: str
) -> None:
    bad = row(1, **overrides)
    if column == "address":
        bad["account_no"] = "A0000"  # the same account as line 2, with another address
    columns = (*COLUMNS, "position_uncertainty_m")
    errors = errors_of(session, csv_text([row(0), bad], columns))

    assert [(e["line"], e["column"]) for e in errors] == [(3, column)]
    assert words in errors[0]["error"]


def test_a_meters_position_uncertainty_is_kept_and_changed_by_a_later_file(
    session: Session,
) -> None:
    columns = (*COLUMNS, "position_uncertainty_m")
    imported(session, csv_text([row(0, position_uncertainty_m="25"), row(1)], columns))
    meters = meters_by_no(session)
    assert (meters["M0000"].position_uncertainty_m, meters["M0001"].position_uncertainty_m) == (
        25.0,
        None,
    )
    again = imported(session, csv_text([row(0, position_uncertainty_m="12.5"), row(1)], columns))
    assert (again.meters_updated, again.unchanged) == (1, 1)
    assert meters_by_no(session)["M0000"].position_uncertainty_m == 12.5


def test_line_numbers_count_the_lines_of_a_quoted_value_spanning_two(session: Session) -> None:
    text = csv_text([row(0, address='"Riverside Road 1\nBlock B"'), row(2), row(4, lat="x")])
    errors = errors_of(session, text)

    assert [e["line"] for e in errors] == [5]


def test_a_line_with_an_unquoted_comma_is_named(session: Session) -> None:
    errors = errors_of(session, csv_text([row(0), row(1, address="1 Road, Town")]))

    assert [(e["line"], e["column"]) for e in errors] == [(3, None)]
    assert "unquoted comma" in errors[0]["error"]


def test_last_read_at_without_a_zone_is_utc_and_with_one_is_converted(session: Session) -> None:
    rows = [
        row(0, last_read_at="2026-10-25"),
        row(1, last_read_at="2026-10-25T17:30:00+08:00"),
    ]
    imported(session, csv_text(rows))

    meters = meters_by_no(session)
    assert meters["M0000"].last_read_at == datetime(2026, 10, 25, tzinfo=UTC)
    assert meters["M0001"].last_read_at == datetime(2026, 10, 25, 9, 30, tzinfo=UTC)


def test_progress_is_reported_in_bytes_read_up_to_the_files_size_then_each_writing_step(
    session: Session,
) -> None:
    calls: list[tuple[int, int] | str] = []
    text = csv_text([row(i) for i in range(12_000)])
    imported(
        session,
        text,
        progress=lambda done, total: calls.append((done, total)),
        writing=calls.append,
    )

    size = len(text.encode("utf-8"))
    read = [c for c in calls if isinstance(c, tuple)]
    assert read[0] == (0, size)
    assert read[-1] == (size, size)
    assert [done for done, _ in read] == sorted(done for done, _ in read)
    assert len(read) >= 4
    # The steps come after the file is read, each once, in order.
    assert calls[len(read) :] == list(WRITING_STEPS)
    assert counts(session)["Meter"] == 12_000


def test_a_file_with_a_bad_row_reaches_no_writing_step(session: Session) -> None:
    steps: list[str] = []
    with pytest.raises(Invalid):
        imported(session, csv_text([row(0), row(1, lat="91")]), writing=steps.append)
    assert steps == []


# --- a first load on PostgreSQL (its foreign keys checked once, not per row) -------------------

KEYS = text(
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = CAST(:table AS regclass) AND contype IN ('f', 'u') ORDER BY conname"
)
INDEXES = text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :table")


def table_keys(session: Session, table: str = "meters") -> list[tuple[str, str]]:
    """A table's foreign keys, unique constraints and indexes, each by name with its
    definition."""
    keys = [(name, definition) for name, definition in session.execute(KEYS, {"table": table})]
    keys += sorted(
        (name, definition) for name, definition in session.execute(INDEXES, {"table": table})
    )
    session.commit()
    return keys


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_first_load_leaves_the_keys_as_they_were_and_enforced(session: Session) -> None:
    before = table_keys(session), table_keys(session, "accounts")
    assert [name for name, _ in before[0]] == [
        "fk_meters_account_id_accounts",
        "fk_meters_route_id_routes",
        "uq_meters_meter_no",
        "ix_meters_account_id",
        "ix_meters_route_sequence",
        "pk_meters",
        "uq_meters_meter_no",
    ]
    assert [name for name, _ in before[1]] == [
        "uq_accounts_account_no",
        "pk_accounts",
        "uq_accounts_account_no",
    ]
    altered: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith(
            ("ALTER TABLE accounts", "ALTER TABLE meters", "DROP INDEX", "CREATE INDEX")
        ):
            altered.append(" ".join(statement.split()[:8]))

    event.listen(session.get_bind(), "before_cursor_execute", record)
    imported(session, csv_text([row(i) for i in range(6)]))
    first_load, altered[:] = altered[:], []
    imported(session, csv_text([row(i) for i in range(8)]))  # the tables hold rows now
    event.remove(session.get_bind(), "before_cursor_execute", record)

    # The owner's first load checked the keys once and built the indexes once (dropped and
    # made again); a load into tables holding rows kept the per-row work.
    assert first_load == [
        'ALTER TABLE accounts DROP CONSTRAINT "uq_accounts_account_no"',
        'ALTER TABLE accounts ADD CONSTRAINT "uq_accounts_account_no" UNIQUE (account_no)',
        'ALTER TABLE meters DROP CONSTRAINT "fk_meters_account_id_accounts"',
        'ALTER TABLE meters DROP CONSTRAINT "fk_meters_route_id_routes"',
        'ALTER TABLE meters DROP CONSTRAINT "uq_meters_meter_no"',
        *['DROP INDEX "ix_meters_account_id"', 'DROP INDEX "ix_meters_route_sequence"'],
        "CREATE INDEX ix_meters_account_id ON public.meters USING btree (account_id)",
        "CREATE INDEX ix_meters_route_sequence ON public.meters USING btree (route_id,",
        'ALTER TABLE meters ADD CONSTRAINT "uq_meters_meter_no" UNIQUE (meter_no)',
        'ALTER TABLE meters ADD CONSTRAINT "fk_meters_route_id_routes" FOREIGN KEY',
        'ALTER TABLE meters ADD CONSTRAINT "fk_meters_account_id_accounts" FOREIGN KEY',
    ]
    assert altered == []
    assert (table_keys(session), table_keys(session, "accounts")) == before
    assert counts(session)["Meter"] == 8
    with pytest.raises(IntegrityError, match="fk_meters_account_id_accounts"):
        session.execute(text("UPDATE meters SET account_id = account_id + 1000"))
    session.rollback()
    with pytest.raises(IntegrityError, match="uq_accounts_account_no"):
        session.execute(text("UPDATE accounts SET account_no = 'A-same'"))
    session.rollback()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_first_load_rolled_back_leaves_no_row_and_the_foreign_keys_in_place(
    session: Session,
) -> None:
    before = table_keys(session), table_keys(session, "accounts")
    import_meters_csv(session, csv_text([row(i) for i in range(6)]), actor_id=None)
    session.rollback()  # the caller's unit of work failed after the import

    assert (table_keys(session), table_keys(session, "accounts")) == before
    assert counts(session)["Meter"] == 0
    assert counts(session)["Account"] == 0


# --- over HTTP --------------------------------------------------------------------------------


def post_csv(client: TestClient, text: str, headers: dict[str, str] | None = None) -> Any:
    files = {"file": ("meters.csv", text.encode("utf-8"), "text/csv")}
    return client.post(IMPORT, files=files, headers=headers or {})


def test_an_admin_imports_meters_over_http(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    response = post_csv(client, csv_text([row(i) for i in range(3)]), auth(client, "admin"))

    assert response.status_code == 200, response.text
    assert response.json()["meters_created"] == 3
    assert len(meters_by_no(session)) == 3


def test_importing_over_http_needs_an_admin_token(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader")
    text = csv_text([row(0)])

    assert post_csv(client, text).status_code == 401
    response = post_csv(client, text, auth(client, "reader1"))
    assert response.status_code == 403
    assert counts(session)["Meter"] == 0


def test_a_bad_file_over_http_gets_422_naming_every_bad_line(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    before = counts(session)
    text = csv_text([row(0, lat="91"), row(1), row(2, lon="east")])

    response = post_csv(client, text, auth(client, "admin"))

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_csv"
    assert [(e["line"], e["column"]) for e in body["errors"]] == [(2, "lat"), (4, "lon")]
    after = counts(session)
    # Logging in writes its own audit entry; the import wrote nothing.
    assert {k: v for k, v in after.items() if k != "AdminLog"} == {
        k: v for k, v in before.items() if k != "AdminLog"
    }


def test_a_moved_meter_reaches_its_old_readers_pull_as_withdrawn(
    client: TestClient, session: Session, settings: Settings
) -> None:
    rows = [row(0), row(1), row(2, route_code="R-B")]
    imported(session, csv_text(rows))
    make_user(session, settings, "reader1", "reader", "G1")
    assign(session, "R-A", "reader1")
    headers = auth(client, "reader1")
    first = client.get("/api/v1/sync/pull", headers=headers).json()
    moved_id = meters_by_no(session)["M0001"].id

    rows[1] = row(1, route_code="R-B")
    imported(session, csv_text(rows))
    second = client.get(
        "/api/v1/sync/pull", headers=headers, params={"cursor": first["cursor"]}
    ).json()

    assert {
        "type": "meter",
        "id": str(moved_id),
        "assignment_id": first["assignments"][0]["id"],
    } in second["withdrawn"]


# --- a plain file, staged a block at a time (PostgreSQL) ---------------------------------------


class Unseekable(io.RawIOBase):
    """A file that can only be read forward (a pipe): the import reads it row by row."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def outcome(session: Session, data: bytes, caplog: pytest.LogCaptureFixture, *, plain: bool) -> Any:
    """What importing `data` leaves in the tables (or the errors it is refused with), undone
    after; and whether it was staged as a plain file."""
    caplog.clear()
    stream: Any = io.BytesIO(data) if plain else io.BufferedReader(Unseekable(data))
    with caplog.at_level(logging.DEBUG, logger="gridwalk"):
        try:
            report = import_meters_csv(session, stream, actor_id=None)
        except Invalid as exc:
            session.rollback()
            return exc.extra["errors"], staged_as_plain(caplog)
    tables = [
        sorted(tuple(r) for r in session.execute(text(f"SELECT {columns} FROM {table}")))  # noqa: S608 - ours
        for table, columns in (
            ("accounts", "account_no, customer_name, address, phone"),
            ("routes", "code, (SELECT code FROM grids WHERE grids.id = grid_id)"),
            (
                "meters",
                "meter_no, (SELECT account_no FROM accounts WHERE accounts.id = account_id), "
                "sequence, lat, lon, digits, multiplier, last_reading, last_read_at, "
                "expected_low, expected_high, position_uncertainty_m",
            ),
        )
    ]
    session.rollback()
    return (report.as_dict(), tables), staged_as_plain(caplog)


def staged_as_plain(caplog: pytest.LogCaptureFixture) -> bool:
    return any("staged as a plain file" in r.getMessage() for r in caplog.records)


PLAIN_COLUMNS = (*COLUMNS, "position_uncertainty_m", "phone", "tariff")
# Plain files, written as exports write them.
PLAIN = {
    "usual": csv_text([row(i) for i in range(5)]),
    "quoted addresses": csv_text(
        [row(i, address=f'"{i // 2} Long St, Block 2"') for i in range(4)]
    ),
    "every cell quoted": "".join(
        line if n == 0 else '"' + line.rstrip("\n").replace(",", '","') + '"\n'
        for n, line in enumerate(csv_text([row(0), row(1)]).splitlines(keepends=True))
    ),
    "Chinese, a backslash, a tab": csv_text(
        [
            *(row(i, customer_name="张三", address="东街\\1号") for i in (0, 1)),
            row(2, address="西街\t2号"),
        ]
    ),
    "crlf, no last line end": csv_text([row(i) for i in range(3)]).replace("\n", "\r\n")[:-2],
    "blank lines at the end": csv_text([row(i) for i in range(3)]) + "\n\r\n\n",
    "a byte-order mark": "\ufeff" + csv_text([row(i) for i in range(2)]),
    "empty optional cells": csv_text(
        [
            row(0, digits="", multiplier="", last_reading="", last_read_at="", grid_code=""),
            row(1, expected_low="", expected_high=""),
        ]
    ),
    "optional columns left out": csv_text([row(0), row(1)], REQUIRED_COLUMNS),
    "more columns, one unread": csv_text(
        [
            row(i, position_uncertainty_m="12.5", phone="138 0013 8000", tariff="A, 2")
            for i in range(3)
        ],
        PLAIN_COLUMNS,
    ).replace("A, 2", '"A, 2"'),
    "date-times of every form": csv_text(
        [
            row(i, last_read_at=moment)
            for i, moment in enumerate(
                (
                    "2026-10-25",
                    "2026-10-25 09:00",
                    "2026-10-25T09:00:00.5",
                    "2026-10-25T09:00:00.123456+08:00",
                    "2026-10-25T23:30:00-05:30",
                    "2026-10-25T09:00Z",
                    "2024-02-29T00:00:00+14:00",
                )
            )
        ]
    ),
}
# Files that are not plain, from their first line or their last: read row by row.
NOT_PLAIN = {
    "a quote escaped": csv_text([row(0), row(1, customer_name='"Li ""Big"" Wei"')]),
    "a cell over two lines": csv_text([row(0), row(1, address='"1 Long St\nBlock 2"')]),
    "spaces around a cell": csv_text([row(0), row(1, meter_no=" M0001 ")]),
    "a blank line": csv_text([row(0)]) + "\n" + csv_text([row(1)]).split("\n", 1)[1],
    "a date last century": csv_text([row(0), row(1, last_read_at="1999-12-31T09:00:00")]),
    "a zone beyond 15 hours": csv_text([row(0), row(1, last_read_at="2026-10-25T09:00+16:00")]),
    "a number written unusually": csv_text([row(0), row(1, digits="+6", multiplier="1.5000")]),
    # Refused, with the same words either way.
    "a day that is not": csv_text([row(0), row(1, last_read_at="2026-02-29")]),
    "a cell too long": csv_text([row(0), row(1, meter_no="M" * 65)]),
    "a value missing": csv_text([row(0), row(1)]).replace(",R-A,", ",,", 1),
}
# Plain, and refused when the database compares the rows (the same words either way).
PLAIN_REFUSED = {
    "a meter named twice": csv_text([row(0), row(1), row(2, meter_no="M0000")]),
    "an account with two names": csv_text([row(0), row(1, customer_name="Other")]),
}
# Plain to the block pattern, refused by the comparisons the database makes.
COMPARED = {
    "lat and lon both 0": csv_text([row(0), row(1, lat="0.000", lon="-0")]),
    "a multiplier of 0": csv_text([row(0), row(1, multiplier="0.00")]),
    "more digits than the meter": csv_text([row(0), row(1, digits="4", last_reading="10000")]),
    "the expected range upside down": csv_text([row(0), row(1, expected_low="401")]),
}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("name", [*PLAIN, *PLAIN_REFUSED, *NOT_PLAIN, *COMPARED])
def test_a_file_staged_a_block_at_a_time_imports_as_read_row_by_row(
    session: Session, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    data = (PLAIN | PLAIN_REFUSED | NOT_PLAIN | COMPARED)[name].encode("utf-8")
    row_by_row, staged_plain = outcome(session, data, caplog, plain=False)
    assert not staged_plain
    in_blocks, staged_plain = outcome(session, data, caplog, plain=True)

    assert in_blocks == row_by_row
    assert staged_plain == (name in PLAIN or name in PLAIN_REFUSED)
    if name in PLAIN:
        assert row_by_row[0]["meters_created"] >= 2
    elif name not in NOT_PLAIN:  # refused, for the last line
        assert {e["line"] for e in row_by_row} == {data.count(b"\n")}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_file_not_plain_after_its_first_block_is_read_again_row_by_row(
    session: Session, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks already staged are undone, and the whole file is read again."""
    monkeypatch.setattr(meter_csv, "PLAIN_BLOCK", 200)  # a row or two a block
    rows = [row(i) for i in range(12)] + [row(12, customer_name='"Li ""Big"" Wei"')]
    data = csv_text(rows).encode("utf-8")

    in_blocks, staged_plain = outcome(session, data, caplog, plain=True)

    assert not staged_plain
    assert any("not plain" in r.getMessage() for r in caplog.records)
    assert in_blocks == outcome(session, data, caplog, plain=False)[0]
    assert in_blocks[0]["meters_created"] == 13
