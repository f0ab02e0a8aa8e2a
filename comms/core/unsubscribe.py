"""Unsubscribe links for end-user emails: a signed token per audience and address, and the mailto fallback.

A message is rendered once per audience, so its footer carries ``UNSUBSCRIBE_TAG``; the email
channel puts each recipient's own link in its place (SendGrid ``substitutions`` per personalization)
and sends ``List-Unsubscribe`` (and, for an HTTPS link, ``List-Unsubscribe-Post: List-Unsubscribe=
One-Click``, RFC 8058) with it. The token is ``<payload>.<signature>``: the payload names the
audience and the address (base64url), the signature is HMAC-SHA256 under the unsubscribe secret,
so whoever answers the link can trust it without a lookup. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["ONE_CLICK", "UNSUBSCRIBE_TAG", "UnsubscribeLinks", "sign_token", "verify_token"]

UNSUBSCRIBE_TAG = "%unsubscribe_url%"
"""Where a rendered footer's unsubscribe link goes; replaced per recipient by the email channel."""

ONE_CLICK = "List-Unsubscribe=One-Click"
"""The value of ``List-Unsubscribe-Post`` (RFC 8058 section 3.1)."""

_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Where a recipient can unsubscribe: an HTTPS one-click URL when there is a public URL, else a mailto."""

    public_url: str | None
    secret: bytes | None
    mailbox: str

    @property
    def one_click(self) -> bool:
        """Whether links are one-click HTTPS URLs (RFC 8058), not a mailto."""
        return bool(self.public_url and self.secret)

    def link(self, audience: str, address: str) -> str:
        """The footer link of one recipient."""
        if self.public_url and self.secret:
            return f"{self.public_url.rstrip('/')}/unsubscribe/{sign_token(self.secret, audience, address)}"
        return self.mailto(audience)

    def mailto(self, audience: str) -> str:
        """A mailto a person can send to unsubscribe from the audience."""
        return f"mailto:{self.mailbox}?subject={quote(f'unsubscribe {audience}')}"

    def headers(self, audience: str, address: str) -> dict[str, str]:
        """``List-Unsubscribe`` (URL and mailto) and, for a one-click URL, ``List-Unsubscribe-Post``."""
        if not self.one_click:
            return {"List-Unsubscribe": f"<{self.mailto(audience)}>"}
        return {
            "List-Unsubscribe": f"<{self.link(audience, address)}>, <{self.mailto(audience)}>",
            "List-Unsubscribe-Post": ONE_CLICK,
        }


def sign_token(secret: bytes, audience: str, address: str) -> str:
    """The token of an audience and address: the payload and its HMAC-SHA256 signature, base64url."""
    payload = _b64(f"{audience}\n{address.strip().lower()}".encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """The (audience, address) a token names, or None when it is malformed or its signature is wrong."""
    payload, _, signature = token.partition(".")
    if not payload or not signature or not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    try:
        audience, _, address = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().partition("\n")
    except (ValueError, UnicodeDecodeError):
        return None
    return (audience, address) if audience and address else None


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
