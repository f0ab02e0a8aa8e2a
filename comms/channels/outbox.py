"""The dry-run channel: every envelope becomes a file under ``<outbox>/<cutover>/`` instead of a request.

What the file holds is the channel kind's ``OutboxWriter`` (listed in ``comms.channels.registry``):
email is a real ``.eml`` (multipart/alternative text + HTML, the ``.ics`` attached when there is
one) as the batch's first recipient receives it, addressed to that one person; beside it, a folder
``<file stem>/`` holds, for a batch of at most PER_RECIPIENT_FILES recipients, one ``.eml`` per
recipient, and for a bigger one the exact Mail Send request body SendGrid would receive
(``sendgrid-mail-send.json``, one personalization per recipient). Slack is the exact chat.postMessage payload; the status page and a webhook are the request
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
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from comms.channels.base import (
    ChannelKind,
    CheckRow,
    Envelope,
    Leaving,
    Receipt,
    Recipient,
    Reconciliation,
    not_watched,
)
from comms.channels.calendar import build_ics
from comms.channels.mail_send import invite_attachment, mail_send_body
from comms.channels.slack import build_post_args
from comms.channels.statuspage import build_incident_request
from comms.clock import Clock, utc_now
from comms.core.content import EmailContent
from comms.core.unsubscribe import UNSUBSCRIBE_TAG, UnsubscribeLinks
from comms.errors import PermanentChannelError, TransientChannelError
from comms.plan.models import Plan

__all__ = [
    "CompanionWriter",
    "EMAIL_BATCH",
    "EmailFile",
    "OutboxChannel",
    "OutboxWriter",
    "PAGE_PLACEHOLDER",
    "PER_RECIPIENT_FILES",
    "SENDGRID_BODY_FILE",
    "SlackFile",
    "StatuspageFile",
    "digest",
    "json_bytes",
    "key_digest",
    "slug",
]

log = logging.getLogger(__name__)

EMAIL_BATCH = 1000
PER_RECIPIENT_FILES = 20
"""Up to this many recipients in a batch, the outbox writes one .eml per recipient; above, the SendGrid request."""
SENDGRID_BODY_FILE = "sendgrid-mail-send.json"
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


@runtime_checkable
class CompanionWriter(Protocol):
    """A writer whose file has companions: files in a folder named after the file's stem."""

    def companions(self, envelope: Envelope) -> dict[str, bytes]:
        """File name (inside the folder) to bytes; empty when the file says it all."""
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

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """Write the envelope's file atomically; the receipt names it as ``outbox:<cutover>/<file>``."""
        if len(envelope.recipients) > self.max_batch:
            raise PermanentChannelError(
                f"{len(envelope.recipients)} recipients in one {self.kind.value} envelope",
                remedy=f"split the recipients into batches of at most {self.max_batch} (max_batch)",
            )
        leaving()
        written: list[str] = []
        for part in _personal_envelopes(envelope):
            path = self.path_for(part)
            data = self._writer.data(part)
            companions = self._writer.companions(part) if isinstance(self._writer, CompanionWriter) else {}
            try:
                for name, companion in companions.items():  # before the file reconcile looks for
                    _write_atomic(path.with_suffix("") / name, companion)
                _write_atomic(path, data)
            except OSError as exc:
                raise TransientChannelError(f"outbox: could not write {path}: {exc}") from exc
            written.append(path.relative_to(self.directory).as_posix())
        log.info("outbox wrote %s (%d recipient(s))", ", ".join(written), len(envelope.recipients))
        return Receipt(provider_id=f"outbox:{written[0]}", thread_ref=self._writer.thread_ref(envelope))

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Sent when the envelope's file exists (and, for keyed files, carries its delivery key)."""
        path = self.path_for(_personal_envelopes(envelope)[0])
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
                dry_run=True,
            )
        ]


class EmailFile:
    """Email as a real ``.eml`` per batch (its first recipient's), named by a digest of the batch's delivery keys.

    Its companions show every recipient's copy (small batches) or the SendGrid request (big ones).
    """

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
        """The .eml as the batch's first recipient receives it."""
        return self._eml(envelope, envelope.recipients[0] if envelope.recipients else None, sample=True)

    def companions(self, envelope: Envelope) -> dict[str, bytes]:
        """One .eml per recipient of a small batch; the exact SendGrid request body of a bigger one."""
        recipients = envelope.recipients
        if len(recipients) <= 1:
            return {}
        if len(recipients) <= PER_RECIPIENT_FILES:
            return {
                f"{number:02d}.{slug(recipient.address)}.eml": self._eml(envelope, recipient, sample=False)
                for number, recipient in enumerate(recipients, start=1)
            }
        invite = None
        if envelope.calendar is not None:
            ics = build_ics(
                envelope.calendar, organizer_email=self._sender, organizer_name=self._sender_name, stamp=self._clock()
            )
            invite = invite_attachment(ics.data, content_type=ics.content_type, filename=ics.filename)
        sender = {"email": self._sender, "name": self._sender_name or ""}
        body = mail_send_body(
            envelope,
            sender=sender,
            reply_to=self._reply_to,
            invite=invite,
            max_batch=self.max_batch,
            unsubscribe=self._unsubscribe,
        )
        return {SENDGRID_BODY_FILE: json_bytes(body)}

    def _eml(self, envelope: Envelope, recipient: Recipient | None, *, sample: bool) -> bytes:
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
        if recipient is not None:
            message["To"] = formataddr((recipient.name or "", recipient.address))
        if self._reply_to:
            message["Reply-To"] = self._reply_to
        message["Date"] = format_datetime(self._clock())
        own = "" if sample or recipient is None else f".{digest(recipient.delivery_key)}"
        message["Message-ID"] = f"<{batch}{own}.{slug(envelope.occurrence)}@comms.outbox>"
        message["X-Comms-Cutover"] = envelope.cutover
        message["X-Comms-Occurrence"] = envelope.occurrence
        message["X-Comms-Audience"] = envelope.audience or ""
        message["X-Comms-Batch"] = batch
        message["X-Comms-Recipients"] = str(len(envelope.recipients))
        if recipient is not None:
            message["X-Comms-Delivery-Key"] = recipient.delivery_key
        text, html = content.text, content.html
        if envelope.unsubscribe is not None:
            text, html = self._add_unsubscribe(message, envelope, recipient, text, html)
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

    def _add_unsubscribe(
        self, message: EmailMessage, envelope: Envelope, recipient: Recipient | None, text: str, html: str
    ) -> tuple[str, str]:
        """The List-Unsubscribe headers and footer link: the recipient's own (each .eml is one person's copy)."""
        assert envelope.unsubscribe is not None
        audience = envelope.unsubscribe.audience
        if recipient is not None:
            link, headers = self._unsubscribe.for_audience(audience)(recipient.address)
        else:
            link, headers = self._unsubscribe.mailto_only(audience)
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


def _personal_envelopes(envelope: Envelope) -> list[Envelope]:
    """The envelope, or one per recipient when recipients carry their own substitutions (an ack link)."""
    content = envelope.content
    if not isinstance(content, EmailContent) or not any(r.substitutions for r in envelope.recipients):
        return [envelope]
    return [
        replace(envelope, recipients=(r,), content=content.substituted(dict(r.substitutions)))
        for r in envelope.recipients
    ]


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
