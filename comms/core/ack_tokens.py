"""Signed, expiring ack tokens: what an escalation email's "Acknowledge" link carries.

A token names the incident, the escalation level and the recipient, and when it expires; it is
``<payload>.<signature>``, both URL-safe base64, the signature an HMAC-SHA256 of the payload with
``COMMS_ACK_SECRET``. Pure: the caller passes the secret and ``now``. One-time use is the store's
part (``comms.store.console.claim_ack_token``), keyed by :func:`token_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from comms.errors import AckLinkError

__all__ = ["AckClaim", "ack_claim", "sign_ack_token", "token_digest", "verify_ack_token"]

_VERSION = 1


@dataclass(frozen=True)
class AckClaim:
    """What an ack token says: who may acknowledge which incident at which level, until when."""

    incident_id: int
    level: int
    recipient: str
    expires_at: datetime


def sign_ack_token(claim: AckClaim, *, secret: bytes) -> str:
    """The token of a claim, signed with ``secret``."""
    payload = json.dumps(
        {
            "v": _VERSION,
            "i": claim.incident_id,
            "l": claim.level,
            "r": claim.recipient,
            "e": int(claim.expires_at.timestamp()),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")
    body = _b64(payload)
    return f"{body}.{_b64(_mac(body, secret))}"


def verify_ack_token(token: str, *, secret: bytes, now: datetime) -> AckClaim:
    """The claim of a genuine, unexpired token; AckLinkError for anything else."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature:
        raise AckLinkError("this ack link is incomplete; open the link from the email again")
    try:
        given = _unb64(signature)
    except ValueError:
        raise AckLinkError("this ack link is not genuine") from None
    if not hmac.compare_digest(given, _mac(body, secret)):
        raise AckLinkError("this ack link is not genuine")
    try:
        data = json.loads(_unb64(body))
        claim = AckClaim(
            incident_id=int(data["i"]),
            level=int(data["l"]),
            recipient=str(data["r"]),
            expires_at=datetime.fromtimestamp(int(data["e"]), tz=UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise AckLinkError("this ack link is not genuine") from None
    if now >= claim.expires_at:
        raise AckLinkError(
            f"this ack link expired at {claim.expires_at:%Y-%m-%d %H:%M} UTC; "
            "acknowledge from the console or with 'comms incident ack'"
        )
    return claim


def ack_claim(incident_id: int, level: int, recipient: str, *, now: datetime, valid_for: timedelta) -> AckClaim:
    """A claim for a recipient, valid from ``now`` for ``valid_for``."""
    return AckClaim(incident_id, level, recipient, expires_at=now + valid_for)


def token_digest(token: str) -> str:
    """The SHA-256 of a token: what the store keeps to make it one-time (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _mac(body: str, secret: bytes) -> bytes:
    return hmac.new(secret, b"comms-ack." + body.encode("ascii"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(str(exc)) from None
