"""The SendGrid v3 Mail Send request body of an envelope, exactly as SendGrid receives it.

Built as a plain dict (the wire format) rather than through the SDK's Mail helper objects: at a million
recipients the helper objects cost more than the HTTP calls. ``SendGridChannel`` posts it; the dry-run
outbox writes the same body.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from comms.channels.base import Envelope
from comms.core.content import EmailContent
from comms.core.unsubscribe import UNSUBSCRIBE_TAG, UnsubscribeLinks
from comms.errors import PermanentChannelError

__all__ = [
    "CATEGORY_LIMIT",
    "MAX_CATEGORIES",
    "MAX_RECIPIENTS",
    "categories",
    "invite_attachment",
    "mail_send_body",
    "safe_name",
]

MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
CATEGORY_LIMIT = 255


def mail_send_body(
    envelope: Envelope,
    *,
    sender: Mapping[str, str],
    reply_to: str | None,
    invite: Mapping[str, str] | None,
    max_batch: int = MAX_RECIPIENTS,
    unsubscribe: UnsubscribeLinks | None = None,
) -> dict[str, Any]:
    """The Mail Send request body of an envelope, exactly as SendGrid receives it (the outbox writes it too).

    ``sender`` is ``{"email", "name"}``; ``invite`` the attachment of the calendar invite, if any.
    An envelope with an unsubscribe (end users) gets each recipient's List-Unsubscribe headers and
    footer link from ``unsubscribe`` (a mailto to the reply-to or sender without one) and the ASM group.
    Raises PermanentChannelError for what SendGrid would refuse (no or duplicate recipients, too many).
    """
    content = envelope.content
    if not isinstance(content, EmailContent):
        raise PermanentChannelError(
            f"email send of {envelope.occurrence} got {type(content).__name__}",
            remedy="route only rendered email content to the email channel",
        )
    recipients = envelope.recipients
    if not recipients:
        raise PermanentChannelError(
            f"email send of {envelope.occurrence} has no recipients", remedy="give the envelope recipients"
        )
    if len(recipients) > max_batch:
        raise PermanentChannelError(
            f"{len(recipients)} recipients in one email request; SendGrid takes at most {max_batch}",
            remedy=f"split the recipients into batches of at most {max_batch} (max_batch)",
        )
    links = unsubscribe or UnsubscribeLinks(None, None, reply_to or sender["email"])
    unsubscribe_of = links.for_audience(envelope.unsubscribe.audience) if envelope.unsubscribe is not None else None
    seen: set[str] = set()
    personalizations: list[dict[str, Any]] = []
    for recipient in recipients:
        address = recipient.address.strip()
        folded = address.lower()
        if folded in seen:
            raise PermanentChannelError(
                f"{address} appears twice in one email request; SendGrid rejects duplicates",
                remedy="remove the duplicate address from the audience's recipients",
            )
        seen.add(folded)
        to: dict[str, str] = {"email": address}
        if recipient.name:
            to["name"] = safe_name(recipient.name)
        custom_args = {"delivery_key": recipient.delivery_key}
        if recipient.delivery_id is not None:
            custom_args["delivery_id"] = str(recipient.delivery_id)
        personalization: dict[str, Any] = {"to": [to], "custom_args": custom_args}
        substitutions = dict(recipient.substitutions)  # the recipient's own ack link (comms.delivery.ack_links)
        if unsubscribe_of is not None:
            substitutions[UNSUBSCRIBE_TAG], personalization["headers"] = unsubscribe_of(address)
        if substitutions:
            personalization["substitutions"] = substitutions
        personalizations.append(personalization)
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": dict(sender),
        "subject": content.subject,
        "content": [
            {"type": "text/plain", "value": content.text},
            {"type": "text/html", "value": content.html},
        ],
        "categories": categories(envelope),
        "custom_args": _top_custom_args(envelope),
    }
    if reply_to:
        body["reply_to"] = {"email": reply_to}
    if invite is not None:
        body["attachments"] = [dict(invite)]
    if envelope.unsubscribe is not None and envelope.unsubscribe.group_id is not None:
        body["asm"] = {"group_id": envelope.unsubscribe.group_id}
    return body


def invite_attachment(invite_data: bytes, *, content_type: str, filename: str) -> dict[str, str]:
    """A calendar invite as a Mail Send attachment (base64 content)."""
    return {
        "content": base64.b64encode(invite_data).decode("ascii"),
        "type": content_type,
        "filename": filename,
        "disposition": "attachment",
    }


def categories(envelope: Envelope) -> list[str]:
    """Categories naming the cutover, message and audience (unique, at most 10, 255 chars each)."""
    values = [f"cutover:{envelope.cutover}", f"message:{envelope.message}"]
    if envelope.audience:
        values.append(f"audience:{envelope.audience}")
    unique = list(dict.fromkeys(v[:CATEGORY_LIMIT] for v in values))
    return unique[:MAX_CATEGORIES]


def _top_custom_args(envelope: Envelope) -> dict[str, str]:
    args = {"cutover": envelope.cutover, "message": envelope.message, "occurrence": envelope.occurrence}
    if envelope.audience:
        args["audience"] = envelope.audience
    return args


def safe_name(name: str) -> str:
    """SendGrid refuses display names containing ';' or ','."""
    if ";" not in name and "," not in name and "  " not in name and name == name.strip():
        return name
    return " ".join(name.replace(";", " ").replace(",", " ").split())
