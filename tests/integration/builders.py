"""Envelopes, settings and a small plan folder for the integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from comms.channels.base import Envelope, MaintenanceWindow, Recipient, StatuspageIntent
from comms.core.content import EmailContent, SlackContent, StatuspageContent, WebhookContent
from comms.rendering import build_slack_content
from comms.settings import Settings

SENDGRID_KEY = "SG.secret-sendgrid-key-0123456789abcdef"
SLACK_TOKEN = "xoxb-secret-slack-token-0123456789abcdef"
STATUSPAGE_KEY = "sp-secret-statuspage-key-0123456789abcdef"
WEBHOOK_SECRET = "whsec-secret-webhook-signing-0123456789abcdef"
SECRETS = (SENDGRID_KEY, SLACK_TOKEN, STATUSPAGE_KEY, WEBHOOK_SECRET)
PAGE_ID = "fakepage0001"
COMPONENT = "cmpapi000001"

CUTOVER = "firestore-to-supabase"
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
NOW = T0 - timedelta(hours=48)
WINDOW = MaintenanceWindow(
    uid=f"{CUTOVER}@comms",
    title="Maintenance: Firestore to Supabase migration",
    description="Firestore to Supabase migration. Live status: https://status.example.com",
    start=T0,
    end=T0 + timedelta(hours=12),
)


def make_settings(
    tmp_path: Path,
    *,
    sendgrid: Any = None,
    slack: Any = None,
    statuspage: Any = None,
    webhook: Any = None,
    **overrides: Any,
) -> Settings:
    """Settings pointing at the given fakes (None: that channel unconfigured); nothing read from the env.

    Webhook receivers are named by URL in the plan; ``webhook`` only sets the signing secret they share.
    """
    values: dict[str, Any] = {
        "outbox_dir": tmp_path / "outbox",
        "database_url": f"sqlite:///{tmp_path / 'comms.db'}",
        "email_from": "cutover@example.com",
        "email_from_name": "Cutover communications",
        "email_reply_to": "support@example.com",
        "sendgrid_api_key": SENDGRID_KEY if sendgrid else None,
        "slack_token": SLACK_TOKEN if slack else None,
        "statuspage_api_key": STATUSPAGE_KEY if statuspage else None,
        "statuspage_page_id": PAGE_ID if statuspage else None,
        "webhook_secret": WEBHOOK_SECRET if webhook else None,
    }
    if sendgrid:
        values["sendgrid_host"] = sendgrid.url
    if slack:
        values["slack_base_url"] = slack.api_url
    if statuspage:
        values["statuspage_base_url"] = statuspage.api_url
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def delivery_key(occurrence: str, audience: str, channel: str, target: str) -> str:
    """A delivery key shaped like the dispatcher's (cutover, occurrence, audience, channel, recipient)."""
    return f"{CUTOVER}|{occurrence}|{audience}|{channel}|{target}"


def recipients(count: int, *, first: int = 0, occurrence: str = "advance-notice") -> tuple[Recipient, ...]:
    """``count`` email recipients ``user<N>@example.com`` with their delivery keys and names."""
    return tuple(
        Recipient(
            f"user{n}@example.com",
            delivery_key(occurrence, "end-users", "email", f"user{n}@example.com"),
            name=f"User {n}",
        )
        for n in range(first, first + count)
    )


def email_envelope(
    count: int = 3,
    *,
    first: int = 0,
    calendar: MaintenanceWindow | None = WINDOW,
    occurrence: str = "advance-notice",
    people: tuple[Recipient, ...] | None = None,
) -> Envelope:
    """An advance-notice email to ``count`` end users, with the calendar invite by default."""
    return Envelope(
        cutover=CUTOVER,
        message=occurrence.split("#")[0],
        occurrence=occurrence,
        audience="end-users",
        content=EmailContent(
            subject="Scheduled maintenance on Saturday 5 December 2026",
            html="<p>We move from <b>Firestore</b> to Supabase.</p>",
            text="We move from Firestore to Supabase.\n",
        ),
        recipients=people if people is not None else recipients(count, first=first, occurrence=occurrence),
        calendar=calendar,
    )


def slack_content(body: str = "The *migration* starts at 22:00 UTC.") -> SlackContent:
    """Slack content built the way rendering builds it (header, sections, context footer)."""
    context = {"cutover": {"title": "Firestore to Supabase migration", "start": T0}}
    return build_slack_content("Scheduled maintenance in 48 hours", body, context)


def slack_envelope(
    channel: str = "#cutover",
    *,
    content: SlackContent | None = None,
    occurrence: str = "advance-notice",
    thread_ref: str | None = None,
    broadcast: bool = False,
) -> Envelope:
    """A Slack post of one occurrence to one channel."""
    return Envelope(
        cutover=CUTOVER,
        message=occurrence.split("#")[0].split("@")[0],
        occurrence=occurrence,
        audience="engineering",
        content=content or slack_content(),
        recipients=(Recipient(channel, delivery_key(occurrence, "engineering", "slack", channel)),),
        thread_ref=thread_ref,
        broadcast=broadcast,
    )


def statuspage_envelope(
    status: str,
    *,
    occurrence: str | None = None,
    incident_id: str | None = None,
    window: MaintenanceWindow | None = None,
    impact: str | None = None,
    component_status: str | None = None,
    component_ids: tuple[str, ...] = (COMPONENT,),
    title: str = "Scheduled maintenance: Firestore to Supabase migration",
    body: str | None = None,
) -> Envelope:
    """A status-page create (no incident_id) or update of the maintenance or an incident."""
    occurrence = occurrence or f"status-{status}"
    return Envelope(
        cutover=CUTOVER,
        message=occurrence,
        occurrence=occurrence,
        audience=None,
        content=StatuspageContent(title=title, body=body or f"The maintenance is now {status.replace('_', ' ')}."),
        recipients=(Recipient(PAGE_ID, delivery_key(occurrence, "-", "statuspage", PAGE_ID)),),
        statuspage=StatuspageIntent(
            status=status,
            incident_id=incident_id,
            impact=impact,
            component_status=component_status,
            component_ids=component_ids,
            window=window,
        ),
    )


def webhook_envelope(
    url: str,
    *,
    occurrence: str = "advance-notice",
    subject: str = "Scheduled maintenance on Saturday 5 December 2026",
    text: str = "We move from Firestore to Supabase.\n",
) -> Envelope:
    """A webhook delivery of one occurrence to one receiver URL, due at T-48h."""
    return Envelope(
        cutover=CUTOVER,
        message=occurrence.split("#")[0].split("@")[0],
        occurrence=occurrence,
        audience="engineering",
        content=WebhookContent(subject=subject, text=text),
        recipients=(Recipient(url, delivery_key(occurrence, "engineering", "webhook", url.lower())),),
        due_at=T0 - timedelta(hours=48),
    )


PLAN_FILES = {
    "audiences/engineering.yaml": """\
title: Engineering
description: The engineers running the cutover.
timezone: UTC
channels:
  email:
    recipients: [platform-team@example.com]
  slack:
    channels: ["#cutover"]
""",
    "audiences/end-users.yaml": """\
title: End users
description: Everyone who signs in to the app.
timezone: America/New_York
channels:
  email:
    recipients_csv: end-users.csv
  statuspage: true
""",
    "audiences/end-users.csv": "email,name\nada@example.com,Ada Lovelace\ngrace@example.org,Grace Hopper\n",
    "schedules/cutover.yaml": """\
cutover:
  name: firestore-to-supabase
  title: Firestore to Supabase migration
  window: 12h
  status_page_url: https://status.example.com
statuspage:
  components: [COMPONENTS]
messages:
  advance-notice:
    title: "Scheduled maintenance in 48 hours"
    at: T-48h
    audiences: [end-users, engineering]
    channels: [email, slack, statuspage]
    max_lateness: 6h
    calendar_invite: true
    statuspage: {status: scheduled, impact: maintenance}
""",
    "templates/advance-notice/email.subject.j2": "Scheduled maintenance on {{ cutover.start | utc }}\n",
    "templates/advance-notice/email.html.j2": "<p>{{ cutover.title }} starts {{ cutover.start | when }}.</p>\n",
    "templates/advance-notice/email.text.j2": "{{ cutover.title }} starts {{ cutover.start | when }}.\n",
    "templates/advance-notice/slack.j2": "*{{ cutover.title }}* starts {{ cutover.start | when }}.\n",
    "templates/advance-notice/statuspage.title.j2": "Scheduled maintenance: {{ cutover.title }}\n",
    "templates/advance-notice/statuspage.body.j2": "{{ cutover.title }} from {{ cutover.start | utc }}.\n",
}


def write_plan(root: Path, *, components: tuple[str, ...] = (COMPONENT,), csv: str | None = None) -> Path:
    """Write a small valid plan (two audiences, one message on all three channels) under ``root``."""
    for relative, text in PLAN_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.endswith("cutover.yaml"):
            text = text.replace("COMPONENTS", ", ".join(components))
        if relative.endswith(".csv") and csv is not None:
            text = csv
        path.write_text(text, encoding="utf-8")
    return root
