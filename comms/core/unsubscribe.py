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
from collections.abc import Callable
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

    def mailto(self, audience: str) -> str:
        """A mailto a person can send to unsubscribe from the audience."""
        return f"mailto:{self.mailbox}?subject={quote(f'unsubscribe {audience}')}"

    def mailto_only(self, audience: str) -> tuple[str, dict[str, str]]:
        """The mailto as footer link, and its ``List-Unsubscribe`` header (no address to sign a link for)."""
        mailto = self.mailto(audience)
        return mailto, {"List-Unsubscribe": f"<{mailto}>"}

    def for_audience(self, audience: str) -> Callable[[str], tuple[str, dict[str, str]]]:
        """A function from an address to its footer link and its headers: ``List-Unsubscribe`` (URL and mailto)
        and, for a one-click URL, ``List-Unsubscribe-Post``; what the audience shares is made once.

        An email request carries a thousand recipients: the mailto (and, without a public URL, the whole
        header) is the same for each of them, and each one-click link is signed once, not twice.
        """
        if not (self.public_url and self.secret):
            shared = self.mailto_only(audience)
            return lambda _address: shared
        mailto = self.mailto(audience)
        prefix, secret = f"{self.public_url.rstrip('/')}/unsubscribe/", self.secret

        def one_click(address: str) -> tuple[str, dict[str, str]]:
            link = prefix + sign_token(secret, audience, address)
            return link, {"List-Unsubscribe": f"<{link}>, <{mailto}>", "List-Unsubscribe-Post": ONE_CLICK}

        return one_click


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
    return _b64(hmac.digest(secret, payload.encode(), hashlib.sha256)[:_SIGNATURE_BYTES])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
