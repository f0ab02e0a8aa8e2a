"""A loopback Slack Web API: chat.postMessage, conversations.* and auth.test, as slack_sdk calls them.

Arguments are checked against ``vendor_specs/slack/methods/<method>.json`` (known arguments,
required ones, types), accepting JSON and form bodies. Errors are HTTP 200 with ``ok: false``
as Slack answers; rate limits are 429 with an integer ``Retry-After``. Posted messages are kept
per channel (with their metadata) so conversations.history and .replies read them back.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fakes.server import FakeServer, RecordedRequest, Reply
from fakes.specs import slack_method

TOKEN = "xoxb-fake-slack-token"
DEFAULT_SCOPES = frozenset(
    {"chat:write", "channels:read", "groups:read", "channels:history", "groups:history", "metadata.message:read"}
)
MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
TEXT_LIMIT = 40000
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_]+$")

# Methods the spec folder does not describe: their arguments, written from docs.slack.dev.
_EXTRA_METHODS: dict[str, dict[str, Any]] = {
    "conversations.list": {
        "args": {
            "required": ["token"],
            "properties": {
                "token": {"type": "string"},
                "cursor": {"type": "string"},
                "exclude_archived": {"type": "boolean"},
                "limit": {"type": "number"},
                "team_id": {"type": "string"},
                "types": {"type": "string"},
            },
        },
        "scope": {"bot": ["channels:read", "groups:read"]},
    },
    "conversations.replies": {
        "args": {
            "required": ["token", "channel", "ts"],
            "properties": {
                "token": {"type": "string"},
                "channel": {"type": "string"},
                "ts": {"type": "string"},
                "cursor": {"type": "string"},
                "include_all_metadata": {"type": "boolean"},
                "inclusive": {"type": "boolean"},
                "latest": {"type": "string"},
                "limit": {"type": "number"},
                "oldest": {"type": "string"},
            },
        },
        "scope": {"bot": ["channels:history", "groups:history"]},
    },
}


@dataclass
class FakeChannel:
    """A channel of the fake workspace and the messages posted to it."""

    id: str
    name: str
    is_member: bool = True
    is_archived: bool = False
    is_private: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": self.is_member,
            "created": 1654868334,
        }


class FakeSlack(FakeServer):
    """A recording Slack workspace; add channels with ``add_channel``, script errors with ``error_next``."""

    name = "slack"

    def __init__(
        self,
        *,
        token: str = TOKEN,
        scopes: frozenset[str] = DEFAULT_SCOPES,
        clock: Any = time.time,
        page_size: int | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.scopes = set(scopes)
        self.channels: dict[str, FakeChannel] = {}
        self.bot_user = "comms-bot"
        self.page_size = page_size
        self._clock = clock
        self._last_ts = 0.0
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    @property
    def api_url(self) -> str:
        """The base URL for ``WebClient(base_url=...)``."""
        return f"{self.url}/api/"

    def add_channel(
        self, name: str, *, is_member: bool = True, is_archived: bool = False, is_private: bool = False
    ) -> FakeChannel:
        """Create a channel (``name`` without '#') and return it; its id is ``C`` + a number."""
        channel = FakeChannel(f"C{next(self._ids):08d}", name.lstrip("#"), is_member, is_archived, is_private)
        self.channels[channel.id] = channel
        return channel

    def channel(self, ref: str) -> FakeChannel | None:
        """A channel by id, ``#name`` or name."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.lstrip("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    # scripting helpers -----------------------------------------------------------------------

    def rate_limit_next(self, count: int = 1, *, retry_after: int = 30) -> None:
        """Answer the next requests 429 with an integer Retry-After, as Slack does."""
        self.fail_next(
            count, status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)}
        )

    def error_next(self, code: str, count: int = 1, **extra: Any) -> None:
        """Answer the next requests HTTP 200 ``{"ok": false, "error": code}``."""
        self.fail_next(count, status=200, body={"ok": False, "error": code, **extra})

    def posts(self) -> list[RecordedRequest]:
        """The chat.postMessage requests received."""
        return self.requests_to("/chat.postMessage")

    # serving ---------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        self.record(request)
        method = request.path.rsplit("/", 1)[-1]
        if request.method != "POST" and request.method != "GET":
            return Reply(405, {"ok": False, "error": "method_not_allowed"})
        args = dict(request.body) if isinstance(request.body, dict) else {}
        for key, values in request.query.items():
            args.setdefault(key, values[-1])
        if request.raw and request.body is None:
            self.violation(f"{method}: body is neither JSON nor form-encoded")
            return _error("invalid_form_data")
        auth = request.header("authorization") or ""
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else args.get("token")
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        spec = self._spec(method)
        if spec is None:
            return Reply(404, {"ok": False, "error": "unknown_method"})
        problem = _check_args(method, spec, args, form=request.form)
        if problem:
            self.violation(f"{method}: {problem}")
            return _error("invalid_arguments", response_metadata={"messages": [problem]})
        needed = [s for s in (spec.get("scope") or {}).get("bot", []) if s in self.scopes]
        wanted = (spec.get("scope") or {}).get("bot", [])
        if wanted and not needed:
            return _error("missing_scope", needed=",".join(wanted), provided=",".join(sorted(self.scopes)))
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("not_implemented_in_fake")
        with self._state:
            reply: Reply = handler(args, request)
            return reply

    def _spec(self, method: str) -> dict[str, Any] | None:
        if method in _EXTRA_METHODS:
            return _EXTRA_METHODS[method]
        try:
            return slack_method(method)
        except FileNotFoundError:
            return None

    def _next_ts(self) -> str:
        now = float(self._clock())
        if now <= self._last_ts:
            now = self._last_ts + 0.000001
        self._last_ts = now
        return f"{now:.6f}"

    def _auth_test(self, args: dict[str, Any], request: RecordedRequest) -> Reply:
        return _ok(
            url="https://fake-workspace.slack.com/",
            team="Fake Workspace",
            user=self.bot_user,
            team_id="T00000001",
            user_id="U00000001",
            bot_id="B00000001",
        )

    def _chat_postMessage(self, args: dict[str, Any], request: RecordedRequest) -> Reply:  # noqa: N802
        channel = self.channel(str(args["channel"]))
        if channel is None:
            return _error("channel_not_found")
        if channel.is_archived:
            return _error("is_archived")
        if not channel.is_member:
            return _error("not_in_channel")
        blocks = _json_arg(args.get("blocks"))
        metadata = _json_arg(args.get("metadata"))
        text = args.get("text")
        if args.get("markdown_text") and (text or blocks):
            return _error("markdown_text_conflict")
        if not (text or blocks or args.get("attachments") or args.get("markdown_text")):
            return _error("no_text")
        if blocks is not None:
            problem = _block_problem(blocks)
            if problem:
                self.violation(f"chat.postMessage blocks: {problem}")
                return _error("invalid_blocks", errors=[problem])
        if text and len(str(text)) > TEXT_LIMIT:
            return _error("msg_too_long")
        if metadata is not None:
            if not isinstance(metadata, dict) or set(metadata) - {"event_type", "event_payload"}:
                return _error("invalid_metadata_format")
            if not _EVENT_TYPE.match(str(metadata.get("event_type", ""))) or not isinstance(
                metadata.get("event_payload"), dict
            ):
                return _error("invalid_metadata_schema")
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": "U00000001",
            "bot_id": "B00000001",
            "text": text or "",
            "ts": ts,
        }
        if blocks is not None:
            message["blocks"] = blocks
        if metadata is not None:
            message["metadata"] = metadata
        thread_ts = args.get("thread_ts")
        if thread_ts:
            if not any(m["ts"] == thread_ts for m in channel.messages):
                return _error("thread_not_found")
            message["thread_ts"] = str(thread_ts)
            message["reply_broadcast"] = _truthy(args.get("reply_broadcast"))
        channel.messages.append(message)
        return _ok(channel=channel.id, ts=ts, message=message)

    def _chat_update(self, args: dict[str, Any], request: RecordedRequest) -> Reply:
        channel = self.channel(str(args["channel"]))
        if channel is None:
            return _error("channel_not_found")
        message = next((m for m in channel.messages if m["ts"] == str(args.get("ts"))), None)
        if message is None:
            return _error("message_not_found")
        blocks = _json_arg(args.get("blocks"))
        if blocks is not None:
            problem = _block_problem(blocks)
            if problem:
                self.violation(f"chat.update: {problem}")
                return _error("invalid_blocks")
            message["blocks"] = blocks
        if args.get("text") is not None:
            message["text"] = str(args["text"])
        message["edited"] = {"user": "U00000001", "ts": self._next_ts()}
        return _ok(channel=channel.id, ts=message["ts"], text=message["text"], message=message)

    def _conversations_history(self, args: dict[str, Any], request: RecordedRequest) -> Reply:
        channel = self.channels.get(str(args["channel"]))
        if channel is None:
            return _error("channel_not_found")
        if not channel.is_member:
            return _error("not_in_channel")
        oldest = float(args.get("oldest") or 0)
        latest = float(args["latest"]) if args.get("latest") else None
        top = [
            m
            for m in channel.messages
            if (not m.get("thread_ts") or m.get("reply_broadcast"))
            and float(m["ts"]) > oldest
            and (latest is None or float(m["ts"]) < latest)
        ]
        newest_first = list(reversed(top))
        return self._page(newest_first, args, include_metadata=_truthy(args.get("include_all_metadata")))

    def _conversations_replies(self, args: dict[str, Any], request: RecordedRequest) -> Reply:
        channel = self.channels.get(str(args["channel"]))
        if channel is None:
            return _error("channel_not_found")
        if not channel.is_member:
            return _error("not_in_channel")
        root = str(args["ts"])
        thread = [m for m in channel.messages if m["ts"] == root or m.get("thread_ts") == root]
        if not thread:
            return _error("thread_not_found")
        return self._page(thread, args, include_metadata=_truthy(args.get("include_all_metadata")))

    def _conversations_info(self, args: dict[str, Any], request: RecordedRequest) -> Reply:
        channel = self.channels.get(str(args["channel"]))  # ids only, as Slack: '#name' is channel_not_found
        if channel is None:
            return _error("channel_not_found")
        return _ok(channel=channel.info())

    def _conversations_list(self, args: dict[str, Any], request: RecordedRequest) -> Reply:
        types = str(args.get("types") or "public_channel").split(",")
        listed = [
            c.info()
            for c in self.channels.values()
            if ("private_channel" if c.is_private else "public_channel") in types
            and not (c.is_archived and _truthy(args.get("exclude_archived")))
        ]
        reply = self._page(listed, args, include_metadata=True, key="channels")
        return reply

    def _page(
        self, items: list[dict[str, Any]], args: dict[str, Any], *, include_metadata: bool, key: str = "messages"
    ) -> Reply:
        limit = int(float(args.get("limit") or 100))
        if self.page_size:
            limit = min(limit, self.page_size)
        cursor = args.get("cursor")
        start = 0
        if cursor:
            try:
                start = int(base64.b64decode(str(cursor)).decode().removeprefix("offset:"))
            except ValueError:
                return _error("invalid_cursor")
        chunk = items[start : start + limit]
        if not include_metadata:
            chunk = [{k: v for k, v in m.items() if k != "metadata"} for m in chunk]
        more = start + limit < len(items)
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return _ok(**{key: chunk}, has_more=more, response_metadata={"next_cursor": next_cursor})


def _ok(**data: Any) -> Reply:
    return Reply(200, {"ok": True, **data})


def _error(code: str, **extra: Any) -> Reply:
    return Reply(200, {"ok": False, "error": code, **extra})


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _json_arg(value: Any) -> Any:
    """blocks / attachments / metadata: structures in JSON bodies, URL-encoded JSON strings in forms."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _check_args(method: str, spec: dict[str, Any], args: dict[str, Any], *, form: bool) -> str | None:
    declared = spec["args"]["properties"]
    for name in spec["args"].get("required", []):
        if name != "token" and args.get(name) in (None, ""):
            return f"missing required argument '{name}'"
    for name, value in args.items():
        if name not in declared:
            return f"unknown argument '{name}'"
        if value is None:
            return f"argument '{name}' is null"
        if not _type_ok(declared[name], value, form=form):
            return f"argument '{name}' has the wrong type: {value!r}"
    return None


def _type_ok(schema: dict[str, Any], value: Any, *, form: bool) -> bool:
    options = schema.get("anyOf") or [schema]
    json_structured = "JSON" in str(schema.get("desc", ""))
    for option in options:
        kind = option.get("type")
        if kind == "string" and (isinstance(value, str) or (json_structured and isinstance(value, (list, dict)))):
            return True
        if kind == "boolean" and (isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0")):
            return True
        if kind in ("number", "integer") and not isinstance(value, bool):
            try:
                float(value)
                return True
            except (TypeError, ValueError):
                pass
        if kind is None and "type" not in option:
            return True
    return False


def _block_problem(blocks: Any) -> str | None:
    if not isinstance(blocks, list):
        return "blocks must be an array"
    if len(blocks) > MAX_BLOCKS:
        return f"more than {MAX_BLOCKS} blocks"
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"block {index} has no type"
        text = block.get("text")
        if block["type"] == "header":
            if (
                not isinstance(text, dict)
                or text.get("type") != "plain_text"
                or len(text.get("text", "")) > HEADER_LIMIT
            ):
                return f"header block {index} must be plain_text of at most {HEADER_LIMIT} characters"
        if block["type"] == "section" and isinstance(text, dict) and len(text.get("text", "")) > SECTION_LIMIT:
            return f"section block {index} text is longer than {SECTION_LIMIT}"
    return None
