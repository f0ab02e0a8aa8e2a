"""KPI files: loading and checking them, storing them on the cutover, and the T+1 week message quoting them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from comms.bootstrap import bootstrap
from comms.core.content import EmailContent, SlackContent
from comms.errors import InputError, NotFoundError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.plan.models import Trigger
from comms.reports.kpis import load_kpis, store_kpis
from comms.reports.metrics import communication_metrics
from comms.services.scheduling import apply_event, schedule_cutover
from comms.settings import Settings
from comms.store import repository as repo
from comms.store.engine import make_engine
from comms.store.incident_tables import EscalationStepRow
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
KPI_YAML = 'uptime: "99.97 %"\nerror_rate: 0.3 %\np95_latency: 290 ms\nsatisfaction: 4.6\n'


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_kpis_load_as_text_in_file_order(tmp_path: Path) -> None:
    """A YAML mapping loads name -> text, numbers included, in the order of the file."""
    kpis = load_kpis(_write(tmp_path, "kpis.yaml", KPI_YAML))
    assert list(kpis.items()) == [
        ("uptime", "99.97 %"),
        ("error_rate", "0.3 %"),
        ("p95_latency", "290 ms"),
        ("satisfaction", "4.6"),
    ]


def test_json_kpis_load(tmp_path: Path) -> None:
    """A .json file is read as JSON."""
    assert load_kpis(_write(tmp_path, "kpis.json", '{"support_volume": "+3 %", "uptime": 99.9}')) == {
        "support_volume": "+3 %",
        "uptime": "99.9",
    }


@pytest.mark.parametrize(
    ("name", "text", "complaint"),
    [
        ("broken.yaml", "uptime: [99.9\n", "not valid YAML"),
        ("broken.json", '{"uptime": }', "not valid JSON"),
        ("list.yaml", "- uptime\n- errors\n", "expected a mapping"),
        ("empty.yaml", "", "expected a mapping"),
        ("nested.yaml", "uptime:\n  week1: 99.9\n", "single value"),
        ("blank.yaml", "uptime: ''\n", "1 to 500 characters"),
    ],
)
def test_bad_kpi_file_is_an_input_error_naming_it(tmp_path: Path, name: str, text: str, complaint: str) -> None:
    """A malformed, non-mapping, nested or blank KPI file is refused with the file's name and the reason."""
    path = _write(tmp_path, name, text)
    with pytest.raises(InputError, match=complaint) as caught:
        load_kpis(path)
    assert str(path) in str(caught.value)


def test_missing_kpi_file_is_an_input_error(tmp_path: Path) -> None:
    """A KPI file that does not exist is named in the error."""
    with pytest.raises(InputError, match="no such file"):
        load_kpis(tmp_path / "nope.yaml")


def test_store_kpis_replaces_the_cutover_kpis(tmp_path: Path, database_url: str) -> None:
    """store_kpis writes the mapping on the cutover; a second file replaces the first; metrics expose it."""
    engine = make_engine(database_url)
    schedule_cutover(engine, load_plan(REPO_ROOT, check_templates=False), start=T0, now=T0 - timedelta(days=3))
    store_kpis(engine, None, _write(tmp_path, "a.yaml", KPI_YAML), now=T0)
    store_kpis(engine, "firestore-to-supabase", _write(tmp_path, "b.yaml", "uptime: 99.5 %\n"), now=T0)
    with Session(engine) as session:
        assert communication_metrics(session, repo.find_cutover(session, None))["kpis"] == {"uptime": "99.5 %"}


def test_store_kpis_without_a_cutover_is_not_found(tmp_path: Path, database_url: str) -> None:
    """KPIs cannot be stored before a cutover is scheduled."""
    engine = make_engine(database_url)
    with pytest.raises(NotFoundError):
        store_kpis(engine, None, _write(tmp_path, "a.yaml", KPI_YAML), now=T0)


def test_success_metrics_message_quotes_the_kpis(tmp_path: Path, database_url: str) -> None:
    """After a real run, the T+1 week message carries the stored KPIs and the real escalation count."""
    clock = FakeClock(T0 - timedelta(hours=49))
    channels = {kind: RecordingChannel(kind) for kind in Channel}
    services = bootstrap(Settings(database_url=database_url), clock=clock, sleep=clock.sleep, channels=channels)
    plan = load_plan(REPO_ROOT, check_templates=False)
    schedule_cutover(services.engine, plan, start=T0, now=clock())

    def event(trigger: Trigger, **kwargs: object) -> None:
        outcome = apply_event(services.engine, plan, cutover_name=None, event=trigger, now=clock(), **kwargs)  # type: ignore[arg-type]
        services.dispatcher.dispatch_now(outcome.fired)

    for hours in (-48, -24, -2):
        clock.set(T0 + timedelta(hours=hours))
        services.dispatcher.run_until_idle()
    event(Trigger.GO)
    clock.set(T0)
    services.dispatcher.run_until_idle()
    for stage in (10, 25, 50, 75, 100):
        event(Trigger.STAGE, stage=stage)
    event(Trigger.COMPLETE)
    store_kpis(services.engine, None, _write(tmp_path, "kpis.yaml", KPI_YAML), now=clock())
    clock.set(T0 + timedelta(weeks=1))  # the T+24h follow-up is now past its bound: missed, and escalated
    services.dispatcher.run_until_idle()
    with Session(services.engine) as session:
        escalations = len(session.exec(select(EscalationStepRow)).all())
    emails = {e.audience: e.content for e in channels[Channel.EMAIL].sent if e.occurrence == "success-metrics"}
    posts = [e.content for e in channels[Channel.SLACK].sent if e.occurrence == "success-metrics"]
    assert emails and posts
    for content in emails.values():
        assert isinstance(content, EmailContent)
        assert "99.97 %" in content.text and "290 ms" in content.text
    executives = emails["executives"]
    assert isinstance(executives, EmailContent) and "Uptime: 99.97 %" in executives.text
    assert escalations == 1 and "1 escalation." in executives.text
    assert all(isinstance(c, SlackContent) and "99.97 %" in c.text + str(c.blocks) for c in posts)
