"""The webhook channel as a user runs it: validate, preview, simulate into the outbox, and a SIGKILLed worker."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.webhook import FakeWebhookReceiver

from tests.support.plans import without_quiet_hours

SECRET = "whsec-e2e-signing-secret-0123456789abcdef0123"
FIRST_MESSAGE = """    audiences: [end-users, executives, support, engineering, customer-success]
    channels: [email, slack, statuspage]
"""


def add_webhook_audience(plan: Path, urls: list[str]) -> Path:
    """Give the plan an ``integrations`` audience reached by webhook and send it the advance notice."""
    listed = ", ".join(json.dumps(url) for url in urls)
    (plan / "audiences" / "integrations.yaml").write_text(
        "title: Integrations\ndescription: Systems that follow the cutover.\ntimezone: UTC\n"
        f"channels:\n  webhook:\n    urls: [{listed}]\n",
        encoding="utf-8",
    )
    schedule = plan / "schedules" / "cutover.yaml"
    text = schedule.read_text(encoding="utf-8")
    assert text.count(FIRST_MESSAGE) >= 1, "the advance notice's audiences and channels moved"
    webhook_too = FIRST_MESSAGE.replace("customer-success]", "customer-success, integrations]").replace(
        "statuspage]", "statuspage, webhook]"
    )
    schedule.write_text(text.replace(FIRST_MESSAGE, webhook_too, 1), encoding="utf-8")
    return plan


@pytest.fixture
def webhook_plan(plan_copy: Path) -> Path:
    plan = add_webhook_audience(plan_copy, ["https://hooks.example.com/cutover"])
    (plan / "templates" / "advance-notice" / "webhook.subject.j2").write_text("Webhook: {{ cutover.title }}\n")
    return plan


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("COMMS_") and name != "COMMS_SPECS_DIR":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_validate_and_preview_a_plan_with_a_webhook_audience(cli, webhook_plan, no_credentials):
    """`comms validate` passes and `comms preview --channel webhook` prints the webhook's subject and text."""
    assert cli("validate", "--plan", webhook_plan).exit_code == 0
    shown = cli(
        "preview", "advance-notice", "--audience", "integrations", "--channel", "webhook", "--plan", webhook_plan
    )
    assert shown.exit_code == 0 and "Subject: Webhook: Firestore to Supabase migration" in shown.output


def test_simulate_writes_webhook_deliveries_to_the_outbox(cli, webhook_plan, no_credentials, tmp_path):
    """Without a secret, the rehearsal writes the webhook request (its own subject, the email's text) to the outbox."""
    outbox = tmp_path / "rehearsal"
    result = cli(
        "simulate",
        "--start",
        "2026-12-05T22:00:00Z",
        "--plan",
        webhook_plan,
        "--json",
        "--outbox",
        outbox,
        "--db",
        tmp_path / "rehearsal.db",
    )
    assert result.exit_code == 0, result.output
    lines = {o["key"]: o for o in json.loads(result.output)["occurrences"]}
    assert lines["advance-notice"]["deliveries"]["webhook"] == 1
    (written,) = outbox.rglob("advance-notice.integrations.webhook.*.json")
    request = json.loads(written.read_text())
    assert request["url"] == "https://hooks.example.com/cutover" and "X-Comms-Signature" not in request["headers"]
    assert request["json"]["subject"] == "Webhook: Firestore to Supabase migration"
    assert "starts in 2 days" in request["json"]["text"]  # no webhook.text.j2: the email's text, sent at T-48h
    assert request["json"]["due_at"] == "2026-12-03T22:00:00Z"


def _comms(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comms", *args], env=env, capture_output=True, text=True, timeout=120)


def _webhook_states(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("SELECT recipient, state FROM delivery WHERE channel = 'webhook'").fetchall())


@pytest.mark.slow
def test_webhook_is_delivered_signed_exactly_once_across_a_sigkill(plan_copy: Path, tmp_path: Path) -> None:
    """A worker killed while a receiver holds its answer leaves the delivery uncertain; the re-send reuses the key."""
    db = tmp_path / "comms.db"
    with FakeWebhookReceiver(secret=SECRET) as receiver:
        urls = [receiver.url_for(f"/hooks/{n}") for n in (1, 2, 3)]
        plan = add_webhook_audience(without_quiet_hours(plan_copy), urls)  # the worker runs on the wall clock
        env = {name: value for name, value in os.environ.items() if not name.startswith("COMMS_")}
        env.update(
            COMMS_DATABASE_URL=f"sqlite:///{db}",
            COMMS_OUTBOX_DIR=str(tmp_path / "outbox"),
            COMMS_WEBHOOK_SECRET=SECRET,
            COMMS_MAX_IN_FLIGHT="1",  # one request out at the kill, so exactly one delivery is left uncertain
        )
        start = datetime.now(UTC) + timedelta(hours=48) - timedelta(minutes=1)
        scheduled = _comms(env, "schedule", "--start", start.isoformat(), "--plan", str(plan))
        assert scheduled.returncode == 0, scheduled.stderr
        receiver.answer_slowly(1, delay=60)
        worker = subprocess.Popen(
            [sys.executable, "-m", "comms", "run", "--until-idle"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not receiver.deliveries and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert len(receiver.deliveries) == 1, "the worker was not killed with a webhook request in flight"
        (held,) = receiver.keys()

        restarted = _comms(env, "run", "--until-idle")
        assert restarted.returncode == 0, restarted.stderr
        states = _webhook_states(db)
        assert sorted(states) == sorted(urls)
        held_url = next(url for url in urls if held.endswith(url.lower()))
        assert states[held_url] == "uncertain", states  # nobody can tell whether it arrived: not re-sent blindly
        assert all(state == "sent" for url, state in states.items() if url != held_url)

        retried = _comms(env, "retry", "--uncertain")
        assert retried.returncode == 0, retried.stderr
        assert set(_webhook_states(db).values()) == {"sent"}

    assert len(set(receiver.keys())) == len(receiver.keys()) == 3  # each key acted on once
    assert receiver.duplicates == [held]  # the re-send carried the same key
    sent_keys = Counter(r.header("X-Comms-Delivery-Key") for r in receiver.requests)
    assert sent_keys[held] == 2 and all(count == 1 for key, count in sent_keys.items() if key != held)
    assert not receiver.rejected and not receiver.violations  # every request was signed with the secret
