"""The dry-run channel: every envelope becomes a file under ``<outbox>/<cutover>/`` instead of a request.

What the file holds is the channel kind's ``OutboxWriter`` (listed in ``comms.channels.registry``):
email is a real ``.eml`` (multipart/alternative text + HTML, the ``.ics`` attached when there is
one); Slack is the exact chat.postMessage payload; the status page and a webhook are the request
the API or the receiver would get. Writes are atomic (temp file + rename) and idempotent: the same
envelope always lands in the same file, so a retry rewrites it instead of adding a second one. No
credentials ever reach a file.
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
from typing import Any, Protocol

from comms.channels.base import ChannelKind, CheckRow, Envelope, Receipt, Reconciliation
from comms.channels.calendar import build_ics
from comms.channels.slack import build_post_args
from comms.channels.statuspage import build_incident_request
from comms.clock import Clock, utc_now
from comms.core.content import EmailContent
from comms.core.unsubscribe import UNSUBSCRIBE_TAG, UnsubscribeLinks
from comms.errors import PermanentChannelError, TransientChannelError
from comms.plan.models import Plan

log = logging.getLogger(__name__)

EMAIL_BATCH = 1000
PAGE_PLACEHOLDER = "PAGE_ID"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(value: str) -> str:
    """A file-name-safe form of a key or target."""
    return _UNSAFE.sub("_", value).strip("._") or "_"


def digest(*parts: str) -> str:
    """A short stable digest of some strings (12 hex characters)."""
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:12]


def key_digest(envelope: Envelope) -> str:
    """The digest of the first recipient's delivery key (of the occurrence when there is none)."""
    return digest(envelope.recipients[0].delivery_key if envelope.recipients else envelope.occurrence)


def json_bytes(data: Any) -> bytes:
    """Indented UTF-8 JSON with a final newline, as the outbox writes it."""
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


class OutboxWriter(Protocol):
    """How one channel kind's envelope becomes a file.

    ``keyed``: the file holds its single recipient's delivery key, which reconcile looks for.
    """

    max_batch: int
    keyed: bool

    def file_suffix(self, envelope: Envelope) -> str:
        """The end of the file name after ``<occurrence>.<audience>.<kind>`` (extension included)."""
        ...

    def data(self, envelope: Envelope) -> bytes:
        """The file's bytes."""
        ...

    def thread_ref(self, envelope: Envelope) -> str | None:
        """The reference later sends thread under (the same for the send and its reconcile)."""
        ...


class OutboxChannel:
    """Writes what a channel would send into files; the default for a channel without credentials."""

    dry_run = True

    def __init__(
        self, kind: ChannelKind, directory: Path, writer: OutboxWriter, *, credentials: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self.max_batch = writer.max_batch
        self.directory = Path(directory)
        self._writer = writer
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"OutboxChannel(kind={self.kind.value!r}, directory={str(self.directory)!r})"

    def path_for(self, envelope: Envelope) -> Path:
        """The file an envelope is written to (the same envelope always gets the same file)."""
        stem = f"{slug(envelope.occurrence)}.{slug(envelope.audience or 'page')}.{self.kind.value}"
        return self.directory / slug(envelope.cutover) / (stem + self._writer.file_suffix(envelope))

    def send(self, envelope: Envelope) -> Receipt:
        """Write the envelope's file atomically; the receipt names it as ``outbox:<cutover>/<file>``."""
        if len(envelope.recipients) > self.max_batch:
            raise PermanentChannelError(
                f"{len(envelope.recipients)} recipients in one {self.kind.value} envelope",
                remedy=f"split the recipients into batches of at most {self.max_batch} (max_batch)",
            )
        path = self.path_for(envelope)
        data = self._writer.data(envelope)
        try:
            _write_atomic(path, data)
        except OSError as exc:
            raise TransientChannelError(f"outbox: could not write {path}: {exc}") from exc
        relative = path.relative_to(self.directory).as_posix()
        log.info("outbox wrote %s (%d recipient(s))", relative, len(envelope.recipients))
        return Receipt(provider_id=f"outbox:{relative}", thread_ref=self._writer.thread_ref(envelope))

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Sent when the envelope's file exists (and, for keyed files, carries its delivery key)."""
        path = self.path_for(envelope)
        if not path.is_file():
            return Reconciliation("not_sent")
        if self._writer.keyed and envelope.recipients:
            key = envelope.recipients[0].delivery_key
            if key not in path.read_text(encoding="utf-8"):
                return Reconciliation("not_sent")
        relative = path.relative_to(self.directory).as_posix()
        receipt = Receipt(provider_id=f"outbox:{relative}", thread_ref=self._writer.thread_ref(envelope))
        return Reconciliation("sent", receipt)

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """One WARN row: no credentials, so this channel writes to the outbox (which does not block)."""
        wanted = " and ".join(self._credentials) or "its credentials"
        return [
            CheckRow(
                f"{self.kind.value} credentials",
                "WARN",
                f"dry run: no credentials; messages go to the outbox {self.directory}/ (set {wanted} to send)",
            )
        ]


class EmailFile:
    """Email as a real ``.eml`` per batch, named by a digest of the batch's delivery keys."""

    max_batch = EMAIL_BATCH
    keyed = False

    def __init__(
        self,
        *,
        sender: str,
        sender_name: str | None = None,
        reply_to: str | None = None,
        clock: Clock = utc_now,
        unsubscribe: UnsubscribeLinks | None = None,
    ) -> None:
        self._sender = sender
        self._sender_name = sender_name
        self._reply_to = reply_to
        self._clock = clock
        self._unsubscribe = unsubscribe or UnsubscribeLinks(None, None, reply_to or sender)

    def file_suffix(self, envelope: Envelope) -> str:
        return f".batch-{_batch_id(envelope)}.eml"

    def thread_ref(self, envelope: Envelope) -> str | None:
        return None

    def data(self, envelope: Envelope) -> bytes:
        content = envelope.content
        if not isinstance(content, EmailContent):
            raise PermanentChannelError(
                f"email send of {envelope.occurrence} got {type(content).__name__}",
                remedy="route only rendered email content to the email channel",
            )
        batch = _batch_id(envelope)
        message = EmailMessage()
        message["Subject"] = content.subject
        message["From"] = formataddr((self._sender_name or "", self._sender))
        message["To"] = ", ".join(formataddr((r.name or "", r.address)) for r in envelope.recipients)
        if self._reply_to:
            message["Reply-To"] = self._reply_to
        message["Date"] = format_datetime(self._clock())
        message["Message-ID"] = f"<{batch}.{slug(envelope.occurrence)}@comms.outbox>"
        message["X-Comms-Cutover"] = envelope.cutover
        message["X-Comms-Occurrence"] = envelope.occurrence
        message["X-Comms-Audience"] = envelope.audience or ""
        message["X-Comms-Batch"] = batch
        message["X-Comms-Recipients"] = str(len(envelope.recipients))
        text, html = content.text, content.html
        if envelope.unsubscribe is not None:
            text, html = self._add_unsubscribe(message, envelope, text, html)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
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


    def _add_unsubscribe(self, message: EmailMessage, envelope: Envelope, text: str, html: str) -> tuple[str, str]:
        """The List-Unsubscribe headers and footer link: the recipient's own for one, the mailto for a batch."""
        assert envelope.unsubscribe is not None
        audience = envelope.unsubscribe.audience
        if len(envelope.recipients) == 1:
            address = envelope.recipients[0].address
            headers, link = self._unsubscribe.headers(audience, address), self._unsubscribe.link(audience, address)
        else:  # one file for the batch: each address would get its own link from SendGrid
            link = self._unsubscribe.mailto(audience)
            headers = {"List-Unsubscribe": f"<{link}>"}
        for name, value in headers.items():
            message[name] = value
        if envelope.unsubscribe.group_id is not None:
            message["X-Comms-Asm-Group"] = str(envelope.unsubscribe.group_id)
        return text.replace(UNSUBSCRIBE_TAG, link), html.replace(UNSUBSCRIBE_TAG, link)


class SlackFile:
    """Slack as the exact chat.postMessage arguments, one file per channel target."""

    max_batch = 1
    keyed = True

    def file_suffix(self, envelope: Envelope) -> str:
        target = envelope.recipients[0].address if envelope.recipients else "none"
        return f".{slug(target)}.json"

    def thread_ref(self, envelope: Envelope) -> str | None:
        return envelope.thread_ref or f"outbox-{key_digest(envelope)}"

    def data(self, envelope: Envelope) -> bytes:
        return json_bytes(build_post_args(envelope))


class StatuspageFile:
    """The status page as the request the API would get (method, URL, JSON body)."""

    max_batch = 1
    keyed = True

    def __init__(self, *, page_id: str | None, base_url: str = "https://api.statuspage.io/v1") -> None:
        self._page_id = page_id or PAGE_PLACEHOLDER
        self._base_url = base_url.rstrip("/")

    def file_suffix(self, envelope: Envelope) -> str:
        return ".json"

    def thread_ref(self, envelope: Envelope) -> str | None:
        intent = envelope.statuspage
        return (intent.incident_id if intent else None) or f"outbox-{key_digest(envelope)}"

    def data(self, envelope: Envelope) -> bytes:
        method, path, body = build_incident_request(envelope, self._page_id)
        return json_bytes({"method": method, "url": f"{self._base_url}{path}", "json": body})


def _batch_id(envelope: Envelope) -> str:
    return digest(*(r.delivery_key for r in envelope.recipients))


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
