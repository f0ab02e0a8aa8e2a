"""The audit export of a real run: CSV and JSON round-trip, content hashes, the exact content sent, streaming."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from comms.bootstrap import Services, bootstrap
from comms.core.times import iso_utc
from comms.errors import InputError, NotFoundError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.reports.audit import AUDIT_COLUMNS, AuditRow, delivery_content, export_audit, iter_audit_rows, write_csv
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from comms.store.tables import ContentRow, DeliveryRow
from tests.integration.test_status_report import REPO_ROOT, T0, Scenario, run_scenario
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Scenario:
    """One real run shared by the read-only tests of this module, on SQLite and on PostgreSQL."""
    return run_scenario(tmp_path_factory.mktemp("audit"), module_database_url)


@pytest.fixture(scope="module")
def rows(scenario: Scenario) -> list[AuditRow]:
    """Every audit row of the run (small enough to hold in a test)."""
    return list(iter_audit_rows(scenario.engine, cutover_name=None))


def _export(scenario: Scenario, fmt: str) -> str:
    out = io.StringIO()
    export_audit(scenario.engine, out, cutover_name=None, fmt=fmt)
    return out.getvalue()


def _as_csv_text(row: AuditRow) -> dict[str, str]:
    return {name: "" if value is None else str(value) for name, value in row.to_json().items()}


def _advance_notice_run(tmp_path: Path, plan_root: Path = REPO_ROOT) -> Services:
    """A run of the T-48h advance notice only, on its own database."""
    clock = FakeClock(T0 - timedelta(hours=48))
    services = bootstrap(
        Settings(database_url=f"sqlite:///{tmp_path}/c.db"),
        clock=clock,
        sleep=clock.sleep,
        channels={kind: RecordingChannel(kind) for kind in Channel},
    )
    schedule_cutover(services.engine, load_plan(plan_root, check_templates=False), start=T0, now=clock())
    services.dispatcher.run_until_idle()
    return services


def test_one_row_per_delivery_in_id_order(scenario: Scenario, rows: list[AuditRow]) -> None:
    """The export has exactly one row per delivery row, in delivery id order."""
    with Session(scenario.engine) as session:
        ids = [d.id for d in session.exec(select(DeliveryRow).order_by(DeliveryRow.id)).all()]  # type: ignore[arg-type]
    assert [row.delivery_id for row in rows] == ids


def test_csv_round_trips(scenario: Scenario, rows: list[AuditRow]) -> None:
    """The CSV parses back to the same rows (None written as empty), under the documented header."""
    text = _export(scenario, "csv")
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == AUDIT_COLUMNS
    assert list(reader) == [_as_csv_text(row) for row in rows]


def test_json_round_trips(scenario: Scenario, rows: list[AuditRow]) -> None:
    """The JSON parses back to the same rows, with types kept (ints, nulls)."""
    assert json.loads(_export(scenario, "json")) == [row.to_json() for row in rows]


def test_csv_and_json_hold_the_same_rows(scenario: Scenario) -> None:
    """CSV and JSON exports agree row for row."""
    from_csv = list(csv.DictReader(io.StringIO(_export(scenario, "csv"))))
    from_json = [
        {k: "" if v is None else str(v) for k, v in item.items()} for item in json.loads(_export(scenario, "json"))
    ]
    assert from_csv == from_json


def test_hash_is_the_sha256_of_the_stored_content(scenario: Scenario, rows: list[AuditRow]) -> None:
    """Each row's content_sha256 is the SHA-256 of the content row its delivery sent."""
    with Session(scenario.engine) as session:
        bodies = {
            d.id: c.body_json
            for d, c in session.exec(
                select(DeliveryRow, ContentRow).join(ContentRow, col(ContentRow.id) == DeliveryRow.content_id)
            ).all()
        }
    for row in rows:
        assert row.content_sha256 == hashlib.sha256(bodies[row.delivery_id].encode("utf-8")).hexdigest()


def test_when_is_the_send_time_or_the_last_change(scenario: Scenario, rows: list[AuditRow]) -> None:
    """Sent rows carry sent_at; the dead Slack post carries the time it was given up."""
    with Session(scenario.engine) as session:
        deliveries = {d.id: d for d in session.exec(select(DeliveryRow)).all()}
    for row in rows:
        delivery = deliveries[row.delivery_id]
        expected = delivery.sent_at if delivery.state == "sent" else delivery.updated_at
        assert expected is not None and row.when == iso_utc(expected)
    [dead] = [row for row in rows if row.state == "dead"]
    assert dead.channel == "slack" and dead.attempts == 1 and dead.provider_id is None


def test_sent_rows_carry_the_provider_id(scenario: Scenario, rows: list[AuditRow]) -> None:
    """Every sent delivery has the provider id the channel returned."""
    assert all(row.provider_id for row in rows if row.state == "sent")
    ids = {f"{kind.value}-{n}" for kind in Channel for n in range(1, len(scenario.channels[kind].sent) + 1)}
    assert {row.provider_id for row in rows if row.state == "sent"} <= ids


def test_show_returns_the_exact_content_sent(scenario: Scenario, rows: list[AuditRow]) -> None:
    """`audit show` of an email delivery gives the content the channel received for that recipient."""
    row = next(r for r in rows if r.channel == "email" and r.state == "sent" and r.occurrence == "final-notice")
    shown = delivery_content(scenario.engine, row.delivery_id)
    [envelope] = [
        e
        for e in scenario.channels[Channel.EMAIL].sent
        if e.occurrence == row.occurrence and row.recipient in {r.address for r in e.recipients}
    ]
    assert shown.content == envelope.content
    assert shown.intact and shown.row == row and shown.cutover == "firestore-to-supabase"


def test_show_of_an_unknown_delivery_is_not_found(scenario: Scenario) -> None:
    """An id that is no delivery gives NotFoundError pointing at the export."""
    with pytest.raises(NotFoundError, match="audit export"):
        delivery_content(scenario.engine, 10**9)


def test_show_detects_changed_content(tmp_path: Path) -> None:
    """Content edited in the store after sending no longer matches its recorded hash."""
    services = _advance_notice_run(tmp_path)
    with Session(services.engine) as session:
        delivery = session.exec(select(DeliveryRow).where(DeliveryRow.channel == "email")).first()
        assert delivery is not None and delivery.id is not None
        delivery_id = delivery.id
        session.execute(
            update(ContentRow)
            .where(ContentRow.id == delivery.content_id)  # type: ignore[arg-type]
            .values(body_json=ContentRow.body_json + " ")
        )
        session.commit()
    assert delivery_content(services.engine, delivery_id).intact is False


def test_unknown_format_is_an_input_error(scenario: Scenario) -> None:
    """Only csv and json are export formats."""
    with pytest.raises(InputError, match="csv or json"):
        export_audit(scenario.engine, io.StringIO(), cutover_name=None, fmt="xml")


def test_export_without_a_cutover_is_not_found(tmp_path: Path) -> None:
    """Exporting from an empty store is a NotFoundError, and nothing is written."""
    engine = bootstrap(Settings(database_url=f"sqlite:///{tmp_path}/e.db"), channels={}).engine
    out = io.StringIO()
    with pytest.raises(NotFoundError):
        export_audit(engine, out, cutover_name=None, fmt="json")
    assert out.getvalue() == ""


def test_export_streams_instead_of_loading_every_row(tmp_path: Path) -> None:
    """Exporting 5,000 deliveries in chunks peaks at a fraction of the memory that holding them all takes."""
    plan_root = tmp_path / "plan"
    for folder in ("audiences", "schedules", "templates"):
        shutil.copytree(REPO_ROOT / folder, plan_root / folder)
    people = "".join(f"user{n}@example.com,User {n}\n" for n in range(5000))
    (plan_root / "audiences" / "end-users.csv").write_text("email,name\n" + people, encoding="utf-8")
    engine = _advance_notice_run(tmp_path, plan_root).engine

    def peak(action: Any) -> int:
        tracemalloc.start()
        try:
            action()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    held = peak(lambda: list(iter_audit_rows(engine, cutover_name=None)))
    with open(os.devnull, "w", encoding="utf-8") as sink:
        streamed = peak(lambda: write_csv(iter_audit_rows(engine, cutover_name=None, yield_per=100), sink))
    assert streamed * 4 < held
