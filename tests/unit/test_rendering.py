"""Rendering: typed values stay data on every channel, and times appear in each audience's zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from comms.core.content import EmailContent, SlackContent, StatuspageContent
from comms.core.context import build_context
from comms.plan.fields import Channel
from comms.plan.models import Plan
from comms.rendering import Renderer, escape_slack
from comms.reports.preview import Preview, render_preview

T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
SUMMER_T0 = datetime(2027, 7, 3, 21, 0, tzinfo=UTC)


def _render(plan: Plan, message: str, audience: str | None, channel: Channel, **extra: Any) -> Any:
    event = extra.pop("event", None)
    context = build_context(
        plan,
        start=T0,
        message=plan.message(message),
        audience=plan.audiences[audience] if audience else None,
        event=event,
        extra=extra,
    )
    return Renderer(plan.root / "templates").render(message, audience, channel, context)


def _text(preview: Preview) -> str:
    """The plain-text side of an email or Slack preview."""
    assert isinstance(preview.content, EmailContent | SlackContent)
    return preview.content.text


def _slack_text(content: SlackContent) -> str:
    return content.text + json.dumps(list(content.blocks), ensure_ascii=False)


def test_slack_mention_in_event_reason_is_escaped(default_plan: Plan) -> None:
    """<!channel> typed as a no-go reason reaches Slack as &lt;!channel&gt;, never as a mention."""
    content = _render(
        default_plan, "postponement", "support", Channel.SLACK, event={"reason": "<!channel> backups late", "by": "Ana"}
    )
    assert isinstance(content, SlackContent)
    sections = [b["text"]["text"] for b in content.blocks if b["type"] == "section"]
    assert any("&lt;!channel&gt; backups late" in text for text in sections)
    assert "<!channel>" not in _slack_text(content)


def test_slack_link_syntax_in_typed_value_is_escaped(default_plan: Plan) -> None:
    """A typed <https://evil|click> cannot form a Slack link."""
    content = _render(
        default_plan,
        "rollback",
        "engineering",
        Channel.SLACK,
        event={"reason": "<https://evil.example|click>", "stage": 50},
    )
    assert "&lt;https://evil.example|click&gt;" in content.text
    assert "<https://evil.example|click>" not in _slack_text(content)


def test_template_links_survive_slack_escaping(default_plan: Plan) -> None:
    """Links written in the template itself stay real Slack links."""
    content = _render(default_plan, "rollback", "engineering", Channel.SLACK, event={"reason": "x", "stage": 50})
    assert "<https://grafana.example.com/d/cutover|Dashboard>" in content.text


def test_script_in_event_reason_is_escaped_in_email_html(default_plan: Plan) -> None:
    """<script> typed as a rollback reason is HTML-escaped in the email's HTML part."""
    content = _render(
        default_plan, "rollback", "support", Channel.EMAIL, event={"reason": "<script>alert(1)</script>", "stage": 50}
    )
    assert isinstance(content, EmailContent)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content.html
    assert "<script>" not in content.html


def test_typed_value_is_verbatim_in_email_text(default_plan: Plan) -> None:
    """The text part carries a typed value as typed (text is not HTML)."""
    content = _render(
        default_plan, "rollback", "support", Channel.EMAIL, event={"reason": "p95 > 5 s & rising", "stage": 50}
    )
    assert "Why: p95 > 5 s & rising" in content.text


def test_jinja_in_a_var_is_not_evaluated(default_plan: Plan) -> None:
    """{{ 7*7 }} passed as a var arrives literally in subject, text and HTML, never as 49."""
    preview = render_preview(
        default_plan,
        message="announcement",
        audience="support",
        channel=Channel.EMAIL,
        variables={"summary": "{{ 7*7 }}"},
    )
    content = preview.content
    assert isinstance(content, EmailContent)
    for part in (content.subject, content.text, content.html):
        assert "{{ 7*7 }}" in part
        assert "49" not in part


def test_jinja_in_a_var_is_not_evaluated_in_slack(default_plan: Plan) -> None:
    """{{ 7*7 }} passed as a var arrives literally in Slack too."""
    preview = render_preview(
        default_plan,
        message="announcement",
        audience="engineering",
        channel=Channel.SLACK,
        variables={"summary": "{{ 7*7 }}"},
    )
    assert "{{ 7*7 }}" in _text(preview)
    assert "49" not in _text(preview)


def test_optional_var_may_be_omitted(default_plan: Plan) -> None:
    """An announcement without 'details' renders with the summary only."""
    content = _render(default_plan, "announcement", "engineering", Channel.SLACK, vars={"summary": "Bridge moved"})
    sections = [block["text"]["text"] for block in content.blocks if block["type"] == "section"]
    assert sections == [":mega: *Bridge moved*"]


def test_each_audience_sees_its_own_local_time(default_plan: Plan) -> None:
    """T0 22:00 UTC reads 22:00 GMT in Dublin, 17:00 EST in New York, 14:00 PST in Los Angeles, 22:00 UTC for UTC."""
    expected = {
        "support": "22:00 GMT",
        "end-users": "17:00 EST",
        "customer-success": "14:00 PST",
        "engineering": "22:00 UTC",
    }
    for audience, local in expected.items():
        preview = render_preview(default_plan, message="advance-notice", audience=audience, channel=Channel.EMAIL)
        assert local in _text(preview), audience


def test_summer_local_time_uses_daylight_saving_zone(default_plan: Plan) -> None:
    """In July, Dublin support reads IST and London executives read BST."""
    support = render_preview(
        default_plan, message="reminder", audience="support", channel=Channel.EMAIL, start=SUMMER_T0
    )
    executives = render_preview(
        default_plan, message="reminder", audience="executives", channel=Channel.EMAIL, start=SUMMER_T0
    )
    assert "22:00 IST" in _text(support)
    assert "22:00 BST" in _text(executives)


def test_non_utc_audience_also_gets_utc(default_plan: Plan) -> None:
    """A non-UTC audience sees the UTC time alongside its local time."""
    preview = render_preview(default_plan, message="advance-notice", audience="customer-success", channel=Channel.SLACK)
    assert "14:00 PST (22:00 UTC)" in _text(preview)


def test_window_span_across_dst_change_is_local_on_both_ends(default_plan: Plan) -> None:
    """A window opening in GMT and closing in BST shows each end in its own offset."""
    t0 = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    preview = render_preview(
        default_plan, message="advance-notice", audience="executives", channel=Channel.EMAIL, start=t0
    )
    assert "Sun 28 Mar 2027, 00:30 GMT to 13:30 BST" in _text(preview)


def test_status_page_is_rendered_in_utc(default_plan: Plan) -> None:
    """The public status page shows UTC, whoever reads it."""
    preview = render_preview(default_plan, message="final-notice", audience=None, channel=Channel.STATUSPAGE)
    assert isinstance(preview.content, StatuspageContent)
    assert "Sat 5 Dec 2026, 22:00 UTC" in preview.content.body


def test_slack_body_becomes_header_sections_and_context(default_plan: Plan) -> None:
    """A Slack body becomes a header with the title, one section per paragraph and a context footer."""
    content = _render(default_plan, "go-decision", "support", Channel.SLACK, event={"decided_at": T0, "by": "Ana"})
    types = [block["type"] for block in content.blocks]
    assert types[0] == "header" and types[-1] == "context" and set(types[1:-1]) == {"section"}
    assert content.blocks[0]["text"]["text"] == "Go decision: the migration proceeds"


def test_escape_slack_escapes_ampersand_first() -> None:
    """escape_slack turns & < > into entities without double-escaping."""
    assert escape_slack("a & <b>") == "a &amp; &lt;b&gt;"
