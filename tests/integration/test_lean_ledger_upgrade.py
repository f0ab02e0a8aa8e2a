"""A database of the per-recipient ledger (schema 0006) is refused until upgraded, then answers as it did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from comms.errors import SchemaMismatchError
from comms.store import ledger_repair
from comms.store.engine import make_engine, upgrade_database
from tests.fixtures.ledger_before_0007 import DEAD_CLAIM, NOW, answers, retried

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BEFORE = FIXTURES / "comms-308465e.db"
ANSWERS = json.loads((FIXTURES / "comms-308465e.answers.json").read_text())


@pytest.fixture
def upgraded(tmp_path: Path) -> str:
    shutil.copy(BEFORE, tmp_path / "old.db")
    url = f"sqlite:///{tmp_path}/old.db"
    upgrade_database(url)
    return url


def test_a_per_recipient_database_is_refused_until_upgraded(tmp_path: Path) -> None:
    shutil.copy(BEFORE, tmp_path / "old.db")
    with pytest.raises(
        SchemaMismatchError, match="schema 0006_unsubscribe, older than this comms .*'comms db upgrade'"
    ):
        make_engine(f"sqlite:///{tmp_path}/old.db")


def test_status_report_audit_and_counts_answer_as_before_the_upgrade(upgraded: str) -> None:
    """What the 0006 release said about its database (status, report, audit CSV, counts), said again."""
    got = answers(make_engine(upgraded))
    for part in ("status", "report", "audit_csv", "outcome"):
        assert got[part] == ANSWERS[part], part


def test_retry_re_queues_what_it_did_before_the_upgrade(upgraded: str) -> None:
    assert retried(make_engine(upgraded)) == ANSWERS["retried"]


def test_a_batch_left_in_flight_before_the_upgrade_is_still_recovered(upgraded: str) -> None:
    """The dead sender's claim survives the upgrade: recovery finds it, its row, and settles it."""
    engine = make_engine(upgraded)
    assert ledger_repair.in_flight_claims(engine) == [DEAD_CLAIM]
    with Session(engine) as session:
        rows = ledger_repair.claimed_rows(session, DEAD_CLAIM)
        assert [(row.channel, row.state) for row in rows] == [("slack", "in_flight")]
        row_id = rows[0].id
        ledger_repair.settle_reconciled(session, DEAD_CLAIM, "not_sent", provider_id=None, error="", now=NOW)
        session.commit()
    assert ledger_repair.in_flight_claims(engine) == []
    with engine.connect() as connection:
        state = connection.execute(text("SELECT state FROM delivery WHERE id = :id"), {"id": row_id}).scalar()
    assert state == "pending"


def test_each_migrated_row_is_a_batch_of_its_own(upgraded: str) -> None:
    """Migrated rows keep a batch each, under their old ids."""
    engine = make_engine(upgraded)
    with engine.connect() as connection:
        recipients = connection.execute(text("SELECT count(*) FROM recipient WHERE id = batch_id")).scalar()
        batches = connection.execute(text("SELECT count(*) FROM delivery_batch")).scalar()
    assert recipients == sum(ANSWERS["outcome"]["states"].values()) == batches
