"""SlackChannel against the loopback Slack fake (arguments checked against slack/methods/*.json)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest
from fakes.slack import FakeSlack

from comms.channels.base import ChannelKind
from comms.channels.slack import EVENT_TYPE, SlackChannel
from comms.errors import PermanentChannelError, TransientChannelError
from comms.rendering import Renderer

from .builders import SLACK_TOKEN, T0, make_settings, slack_content, slack_envelope


@pytest.fixture
def channel(tmp_path, slack, clock):
    return SlackChannel(make_settings(tmp_path, slack=slack), clock=clock, timeout=2)


def _post(slack: FakeSlack) -> dict:
    (request,) = slack.posts()
    return request.body


def test_post_sends_channel_text_and_blocks(channel, slack):
    """chat.postMessage gets the channel, the fallback text and the blocks."""
    envelope = slack_envelope()
    channel.send(envelope)
    body = _post(slack)
    assert body["channel"] == "#cutover" and body["text"] == envelope.content.text
    assert body["blocks"] == [dict(b) for b in envelope.content.blocks]


def test_post_turns_link_unfurling_off(channel, slack):
    """Posts ask Slack not to unfurl links."""
    channel.send(slack_envelope())
    assert _post(slack)["unfurl_links"] is False


def test_post_authenticates_with_the_bot_token(channel, slack):
    """The token goes in Authorization: Bearer xoxb-..."""
    channel.send(slack_envelope())
    assert slack.posts()[0].header("authorization") == f"Bearer {SLACK_TOKEN}"


def test_metadata_carries_the_delivery_key(channel, slack):
    """Message metadata names the event type and carries the delivery key, cutover and occurrence."""
    envelope = slack_envelope()
    channel.send(envelope)
    metadata = _post(slack)["metadata"]
    assert metadata["event_type"] == EVENT_TYPE
    assert metadata["event_payload"] == {
        "delivery_key": envelope.recipients[0].delivery_key,
        "cutover": envelope.cutover,
        "occurrence": envelope.occurrence,
    }


def test_receipt_has_the_post_ts(channel, slack):
    """provider_id and thread_ref of a top-level post are its ts."""
    receipt = channel.send(slack_envelope())
    (message,) = slack.channel("#cutover").messages
    assert receipt.provider_id == message["ts"] and receipt.thread_ref == message["ts"]


def test_reply_is_threaded_and_broadcast_on_the_wire(channel, slack):
    """A threaded send puts thread_ts and reply_broadcast in the request."""
    root = channel.send(slack_envelope())
    channel.send(slack_envelope(occurrence="go-decision", thread_ref=root.thread_ref, broadcast=True))
    body = slack.posts()[1].body
    assert body["thread_ts"] == root.thread_ref and body["reply_broadcast"] is True


def test_reply_receipt_keeps_the_thread_root(channel, slack):
    """A reply's receipt names its own ts as provider_id and the root as thread_ref."""
    root = channel.send(slack_envelope())
    reply = channel.send(slack_envelope(occurrence="reminder", thread_ref=root.thread_ref))
    assert reply.thread_ref == root.thread_ref and reply.provider_id != root.provider_id


def test_top_level_post_sends_no_thread_arguments(channel, slack):
    """Without a thread, neither thread_ts nor reply_broadcast is sent."""
    channel.send(slack_envelope(broadcast=True))
    body = _post(slack)
    assert "thread_ts" not in body and "reply_broadcast" not in body


def test_typed_mentions_reach_the_wire_escaped(tmp_path, channel, slack):
    """<!channel> and <!here> typed into event data arrive escaped, never as live mentions."""
    (tmp_path / "tpl" / "rollback").mkdir(parents=True)
    (tmp_path / "tpl" / "rollback" / "slack.j2").write_text("Reason: {{ event.reason }}")
    context = {
        "message": {"title": "Rolled back"},
        "event": {"reason": "<!channel> errors at 5 % <!here> @here"},
        "cutover": {"title": "Firestore to Supabase migration", "start": T0},
    }
    content = Renderer(tmp_path / "tpl").render("rollback", "engineering", ChannelKind.SLACK, context)
    channel.send(slack_envelope(content=content))
    raw = slack.posts()[0].raw.decode()
    assert "&lt;!channel&gt;" in raw and "<!channel>" not in raw and "<!here>" not in raw


def test_rate_limit_is_transient_with_retry_after(channel, slack):
    """429 ratelimited raises TransientChannelError with the integer Retry-After."""
    slack.rate_limit_next(retry_after=17)
    with pytest.raises(TransientChannelError) as caught:
        channel.send(slack_envelope())
    assert caught.value.retry_after == 17 and caught.value.status == 429


def test_rate_limit_with_an_http_date_waits_until_it_by_the_injected_clock(channel, slack, clock):
    """A Retry-After given as an HTTP-date is the wait from the channel's clock to that date."""
    until = format_datetime(clock() + timedelta(seconds=45), usegmt=True)
    slack.fail_next(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": until})
    with pytest.raises(TransientChannelError) as caught:
        channel.send(slack_envelope())
    assert caught.value.retry_after == 45.0


def test_rate_limit_with_an_unreadable_retry_after_has_no_wait(channel, slack):
    """A Retry-After that is neither seconds nor a date leaves the wait to the retry policy."""
    slack.fail_next(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "later"})
    with pytest.raises(TransientChannelError) as caught:
        channel.send(slack_envelope())
    assert caught.value.retry_after is None


def test_rate_limit_is_not_retried_by_the_sdk(channel, slack):
    """The SDK makes one request on a 429: the dispatcher, not the SDK, retries."""
    slack.rate_limit_next(retry_after=1)
    with pytest.raises(TransientChannelError):
        channel.send(slack_envelope())
    assert len(slack.posts()) == 1


@pytest.mark.parametrize(
    ("code", "remedy"),
    [
        ("channel_not_found", "check that #cutover exists"),
        ("not_in_channel", "invite the bot to #cutover: /invite @"),
        ("is_archived", "unarchive #cutover"),
        ("invalid_auth", "set COMMS_SLACK_TOKEN to a valid bot token"),
        ("not_authed", "set COMMS_SLACK_TOKEN to a valid bot token"),
        ("token_revoked", "set COMMS_SLACK_TOKEN to a valid bot token"),
        ("token_expired", "set COMMS_SLACK_TOKEN to a valid bot token"),
        ("account_inactive", "set COMMS_SLACK_TOKEN to a valid bot token"),
        ("missing_scope", "add the chat:write scope"),
        ("invalid_blocks", "fix the Slack template"),
        ("invalid_blocks_format", "fix the Slack template"),
        ("msg_too_long", "shorten the Slack template"),
        ("no_text", "fix the Slack template"),
        ("restricted_action", "workspace admin"),
        ("invalid_metadata_format", "metadata"),
        ("invalid_metadata_schema", "metadata"),
        ("metadata_too_large", "delivery key"),
    ],
)
def test_slack_error_codes_are_permanent_with_the_fix(channel, slack, code, remedy):
    """Each permanent Slack error code raises PermanentChannelError spelling out the fix."""
    extra = {"needed": "chat:write", "provided": "channels:read"} if code == "missing_scope" else {}
    slack.error_next(code, **extra)
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(slack_envelope())
    assert remedy in caught.value.remedy and code in caught.value.reason


@pytest.mark.parametrize("code", ["fatal_error", "service_unavailable", "internal_error", "rate_limited"])
def test_slack_outage_codes_are_transient(channel, slack, code):
    """fatal_error, service_unavailable and the like raise TransientChannelError."""
    slack.error_next(code)
    with pytest.raises(TransientChannelError):
        channel.send(slack_envelope())


@pytest.mark.parametrize("status", [500, 502, 503])
def test_non_json_server_error_is_transient(channel, slack, status):
    """An HTML 5xx page (not JSON) raises TransientChannelError."""
    slack.fail_next(status=status, body=b"<html><body>Bad gateway</body></html>", headers={"Content-Type": "text/html"})
    with pytest.raises(TransientChannelError):
        channel.send(slack_envelope())


def test_non_json_200_is_transient(channel, slack):
    """A 200 whose body is not JSON raises TransientChannelError."""
    slack.fail_next(status=200, body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(TransientChannelError):
        channel.send(slack_envelope())


def test_dropped_connection_is_transient_and_not_retried(channel, slack):
    """A dropped connection raises TransientChannelError after one request (no SDK retry)."""
    slack.fail_next(drop=True)
    with pytest.raises(TransientChannelError, match="connection failed"):
        channel.send(slack_envelope())
    assert len(slack.posts()) == 1


def test_answer_slower_than_the_timeout_is_transient(tmp_path, slack, clock):
    """An answer later than the client's timeout raises TransientChannelError."""
    channel = SlackChannel(make_settings(tmp_path, slack=slack), clock=clock, timeout=0.2)  # type: ignore[arg-type]
    slack.fail_next(delay=2.0)
    with pytest.raises(TransientChannelError):
        channel.send(slack_envelope())


def test_bot_not_in_channel_is_permanent(channel, slack):
    """Posting where the bot is not a member (fake state, not scripted) says how to invite it."""
    slack.add_channel("private-ops", is_member=False)
    with pytest.raises(PermanentChannelError, match="/invite"):
        channel.send(slack_envelope("#private-ops"))


def test_unknown_channel_is_permanent(channel, slack):
    """Posting to a channel that does not exist raises PermanentChannelError."""
    with pytest.raises(PermanentChannelError, match="channel_not_found"):
        channel.send(slack_envelope("#nowhere"))


def test_wrong_token_is_permanent(tmp_path, slack, clock):
    """A token Slack does not know gives the COMMS_SLACK_TOKEN remedy."""
    channel = SlackChannel(make_settings(tmp_path, slack=slack, slack_token="xoxb-wrong"), clock=clock)
    with pytest.raises(PermanentChannelError, match="COMMS_SLACK_TOKEN"):
        channel.send(slack_envelope())


def test_requests_follow_the_method_specs(channel, slack):
    """Posting, resolving and reconciling send only arguments the method specs declare."""
    envelope = slack_envelope()
    channel.send(envelope)
    channel.reconcile(envelope)
    assert slack.violations == [] and len(slack.requests) >= 3


def test_reconcile_finds_a_sent_post(channel, slack):
    """A post carrying the envelope's key is found in the history: sent, with its ts."""
    envelope = slack_envelope()
    receipt = channel.send(envelope)
    verdict = channel.reconcile(envelope)
    assert verdict.state == "sent" and verdict.receipt.provider_id == receipt.provider_id


def test_reconcile_reports_a_missing_post_as_not_sent(channel, slack):
    """With no post carrying the key, reconcile answers not_sent."""
    channel.send(slack_envelope(occurrence="reminder"))
    assert channel.reconcile(slack_envelope()).state == "not_sent"


def test_reconcile_reads_history_with_metadata(channel, slack):
    """Reconcile asks conversations.history for metadata, by channel id, from a lookback."""
    channel.reconcile(slack_envelope())
    (request,) = slack.requests_to("/conversations.history")
    assert request.body["include_all_metadata"] in ("1", "true") and request.body["channel"].startswith("C")
    assert float(request.body["oldest"]) > 0


def test_reconcile_finds_a_threaded_reply(channel, slack):
    """A reply is looked for in its thread (conversations.replies) and found."""
    root = channel.send(slack_envelope())
    reply = slack_envelope(occurrence="reminder", thread_ref=root.thread_ref)
    channel.send(reply)
    assert channel.reconcile(reply).state == "sent"


def test_reconcile_pages_through_history(tmp_path, clock):
    """The key is found beyond the first page of history."""
    fake = FakeSlack(token=SLACK_TOKEN, clock=lambda: clock().timestamp(), page_size=2)
    fake.add_channel("cutover")
    with fake:
        channel = SlackChannel(make_settings(tmp_path, slack=fake), clock=clock)
        first = slack_envelope(occurrence="first")
        channel.send(first)
        for n in range(5):
            channel.send(slack_envelope(occurrence=f"later-{n}"))
        assert channel.reconcile(first).state == "sent"


def test_reconcile_without_history_scope_is_unknown(tmp_path, clock):
    """When the token may not read history (missing_scope), reconcile answers unknown."""
    fake = FakeSlack(
        token=SLACK_TOKEN, clock=lambda: clock().timestamp(), scopes=frozenset({"chat:write", "channels:read"})
    )
    fake.add_channel("cutover")
    with fake:
        channel = SlackChannel(make_settings(tmp_path, slack=fake), clock=clock)
        assert channel.reconcile(slack_envelope()).state == "unknown"


def test_reconcile_when_not_a_member_is_unknown(channel, slack):
    """When the bot cannot read the channel (not_in_channel), reconcile answers unknown."""
    slack.add_channel("private-ops", is_member=False)
    assert channel.reconcile(slack_envelope("#private-ops")).state == "unknown"


def test_channel_names_resolve_through_conversations_list(channel, slack):
    """'#cutover' resolves to its id through conversations.list, once (cached)."""
    assert channel.resolve_channel("#cutover") == slack.channel("cutover").id
    assert channel.resolve_channel("#cutover") == slack.channel("cutover").id
    assert len(slack.requests_to("/conversations.list")) == 1


def test_channel_info_reports_membership(channel, slack):
    """channel_info returns conversations.info's channel, with is_member."""
    slack.add_channel("private-ops", is_member=False)
    assert channel.channel_info("#private-ops")["is_member"] is False


def test_slack_content_helper_matches_rendering(channel, slack):
    """The test content is built by rendering's own Block Kit builder (header, sections, footer)."""
    content = slack_content("one\n\ntwo")
    assert [b["type"] for b in content.blocks] == ["header", "section", "section", "context"]
