"""The one email-address check: email-validator's syntax rules, no DNS (``check_deliverability=False``).

Every path asks this module: inline recipients in the plan files, the recipients CSVs in
``comms validate`` and ``comms check``, and materializing deliveries before a send. A million-row CSV
must not cost a million full validations, so the common shape (a plain dot-atom local part at an
ASCII domain) has its verdict split in two: the local part by email-validator's own dot-atom rule,
the domain by email-validator itself, asked once per domain and remembered.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["EMAIL_MAX_LENGTH", "EmailAddress", "address_problem", "is_valid_address"]

EMAIL_MAX_LENGTH = 254
"""RFC 5321's limit on a whole address, which email-validator enforces."""

_ATEXT = r"A-Za-z0-9_!#$%&'*+\-/=?^`{|}~"
_PLAIN = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@([A-Za-z0-9.-]+)")
"""A dot-atom local part (always valid to email-validator) at a domain of ASCII letters, digits, dots, dashes."""
_PROBE_LOCAL = "a"


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a sendable email address, or None when it is one."""
    plain = _PLAIN.fullmatch(address)
    if plain is not None and len(address) <= EMAIL_MAX_LENGTH and "xn--" not in address.lower():
        # For this shape email-validator's verdict is the domain's: the local part passes its dot-atom
        # rule, no normalization changes the length, and the probe is no longer than the address.
        return _domain_problem(plain.group(1).lower())
    return _full_problem(address)


def is_valid_address(address: str) -> bool:
    """Whether ``address`` passes the one address check."""
    return address_problem(address) is None


def _checked(address: str) -> str:
    problem = address_problem(address)
    if problem is not None:
        raise ValueError(f"not a valid email address: {problem}")
    return address


EmailAddress = Annotated[str, AfterValidator(_checked)]
"""An email address in a plan file, checked by ``address_problem`` (kept as written)."""


@lru_cache(maxsize=4096)
def _domain_problem(domain: str) -> str | None:
    return _full_problem(f"{_PROBE_LOCAL}@{domain}")


def _full_problem(address: str) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None
