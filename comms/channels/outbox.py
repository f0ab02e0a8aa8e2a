"""The dry-run channel: every envelope becomes a file under ``<outbox>/<cutover>/`` instead of a request.

Email is a real ``.eml`` (multipart/alternative text + HTML, the ``.ics`` attached when there is
one); Slack is the exact chat.postMessage payload; the status page is the request the API would get.
Writes are atomic (temp file + rename) and idempotent: the same envelope always lands in the same
file, so a retry rewrites it instead of adding a second one. No credentials ever reach a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from comms.channels.base import ChannelKind, Envelope, Receipt, Reconciliation
from comms.channels.calendar import build_ics
from comms.channels.slack import build_post_args
from comms.channels.statuspage import build_incident_request
from comms.clock import Clock, utc_now
from comms.core.content import EmailContent
from comms.errors import PermanentChannelError, TransientChannelError

log = logging.getLogger(__name__)

EMAIL_BATCH = 1000
PAGE_PLACEHOLDER = "PAGE_ID"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _slug(value: str) -> str:
    return _UNSAFE.sub("_", value).strip("._") or "_"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:12]


class OutboxChannel:
    """Writes what a channel would send into files; the default for a channel without credentials."""

    dry_run = True

    def __init__(
        self,
        kind: ChannelKind,
        directory: Path,
        *,
        sender: str = "cutover@example.com",
        sender_name: str | None = None,
        reply_to: str | None = None,
        page_id: str | None = None,
        statuspage_base_url: str = "https://api.statuspage.io/v1",
        clock: Clock = utc_now,
    ) -> None:
        self.kind = kind
        self.max_batch = EMAIL_BATCH if kind is ChannelKind.EMAIL else 1
        self.directory = Path(directory)
        self._sender = sender
        self._sender_name = sender_name
        self._reply_to = reply_to
        self._page_id = page_id or PAGE_PLACEHOLDER
        self._statuspage_base_url = statuspage_base_url.rstrip("/")
        self._clock = clock

    def __repr__(self) -> str:
        return f"OutboxChannel(kind={self.kind.value!r}, directory={str(self.directory)!r})"

    def path_for(self, envelope: Envelope) -> Path:
        """The file an envelope is written to (the same envelope always gets the same file)."""
        stem = f"{_slug(envelope.occurrence)}.{_slug(envelope.audience or 'page')}.{self.kind.value}"
        if self.kind is ChannelKind.EMAIL:
            name = f"{stem}.batch-{self._batch_id(envelope)}.eml"
        elif self.kind is ChannelKind.SLACK:
            target = envelope.recipients[0].address if envelope.recipients else "none"
            name = f"{stem}.{_slug(target)}.json"
        else:
            name = f"{stem}.json"
        return self.directory / _slug(envelope.cutover) / name

    def send(self, envelope: Envelope) -> Receipt:
        """Write the envelope's file atomically; the receipt names it as ``outbox:<cutover>/<file>``."""
        if len(envelope.recipients) > self.max_batch:
            raise PermanentChannelError(
                f"{len(envelope.recipients)} recipients in one {self.kind.value} envelope",
                remedy=f"split the recipients into batches of at most {self.max_batch} (max_batch)",
            )
        path = self.path_for(envelope)
        if self.kind is ChannelKind.EMAIL:
            data = self._email(envelope)
            thread_ref = None
        elif self.kind is ChannelKind.SLACK:
            data = _json_bytes(build_post_args(envelope))
            thread_ref = envelope.thread_ref or f"outbox-{self._key_digest(envelope)}"
        else:
            data, thread_ref = self._statuspage(envelope)
        try:
            _write_atomic(path, data)
        except OSError as exc:
            raise TransientChannelError(f"outbox: could not write {path}: {exc}") from exc
        relative = path.relative_to(self.directory).as_posix()
        log.info("outbox wrote %s (%d recipient(s))", relative, len(envelope.recipients))
        return Receipt(provider_id=f"outbox:{relative}", thread_ref=thread_ref)

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Sent when the envelope's file exists (and, for JSON files, carries its delivery key)."""
        path = self.path_for(envelope)
        if not path.is_file():
            return Reconciliation("not_sent")
        if self.kind is not ChannelKind.EMAIL and envelope.recipients:
            key = envelope.recipients[0].delivery_key
            if key not in path.read_text(encoding="utf-8"):
                return Reconciliation("not_sent")
        relative = path.relative_to(self.directory).as_posix()
        if self.kind is ChannelKind.EMAIL:
            thread_ref = None
        elif self.kind is ChannelKind.SLACK:
            thread_ref = envelope.thread_ref or f"outbox-{self._key_digest(envelope)}"
        else:
            intent = envelope.statuspage
            thread_ref = (intent.incident_id if intent else None) or f"outbox-{self._key_digest(envelope)}"
        return Reconciliation("sent", Receipt(provider_id=f"outbox:{relative}", thread_ref=thread_ref))

    def _batch_id(self, envelope: Envelope) -> str:
        return _digest(*(r.delivery_key for r in envelope.recipients))

    def _key_digest(self, envelope: Envelope) -> str:
        return _digest(envelope.recipients[0].delivery_key if envelope.recipients else envelope.occurrence)

    def _email(self, envelope: Envelope) -> bytes:
        content = envelope.content
        if not isinstance(content, EmailContent):
            raise PermanentChannelError(
                f"email send of {envelope.occurrence} got {type(content).__name__}",
                remedy="route only rendered email content to the email channel",
            )
        batch = self._batch_id(envelope)
        message = EmailMessage()
        message["Subject"] = content.subject
        message["From"] = formataddr((self._sender_name or "", self._sender))
        message["To"] = ", ".join(formataddr((r.name or "", r.address)) for r in envelope.recipients)
        if self._reply_to:
            message["Reply-To"] = self._reply_to
        message["Date"] = format_datetime(self._clock())
        message["Message-ID"] = f"<{batch}.{_slug(envelope.occurrence)}@comms.outbox>"
        message["X-Comms-Cutover"] = envelope.cutover
        message["X-Comms-Occurrence"] = envelope.occurrence
        message["X-Comms-Audience"] = envelope.audience or ""
        message["X-Comms-Batch"] = batch
        message["X-Comms-Recipients"] = str(len(envelope.recipients))
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        if envelope.calendar is not None:
            invite = build_ics(
                envelope.calendar, organizer_email=self._sender, organizer_name=self._sender_name, stamp=self._clock()
            )
            message.add_attachment(
                invite.data,
                maintype="text",
                subtype="calendar",
                filename=invite.filename,
                params={"method": invite.method, "charset": "UTF-8"},
            )
        return message.as_bytes(policy=SMTP)

    def _statuspage(self, envelope: Envelope) -> tuple[bytes, str]:
        method, path, body = build_incident_request(envelope, self._page_id)
        intent = envelope.statuspage
        incident_id = (intent.incident_id if intent else None) or f"outbox-{self._key_digest(envelope)}"
        request: dict[str, Any] = {
            "method": method,
            "url": f"{self._statuspage_base_url}{path}",
            "json": body,
        }
        return _json_bytes(request), incident_id


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
