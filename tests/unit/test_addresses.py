"""The one address check (comms.plan.addresses): email-validator's verdict, fast for the common shape."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from comms.plan.addresses import address_problem, is_valid_address
from comms.plan.audiences import EmailTargets

TRICKY = [
    "ada@example.com",
    "Ada.Lovelace+cutover@Mail.Example.COM",
    "a..b@x.com",
    ".a@x.com",
    "a.@x.com",
    "a@x..com",
    "a@-x.com",
    "a@x-.com",
    "a@x",
    "a@x.c0m",
    "a@x.b1",
    "a@x.123",
    "a@1.2.3.4",
    "a@ab--cd.com",
    "a@xn--abc.com",
    "a@xn--bcher-kva.example",
    "a@host.test",
    "a@host.localhost",
    "a@host.local",
    "a@host.invalid",
    "a@host.onion",
    "a@10.in-addr.arpa",
    "a@x_y.com",
    "o'brien@example.ie",
    "{x}|~!#$%&*/=?^`@example.com",
    '"quoted local"@example.com',
    "Ann <ann@example.com>",
    "ann@example.com>",
    "ann@@example.com",
    "ann example@example.com",
    "ann@exa mple.com",
    "",
    "@example.com",
    "ann@",
    "josé@example.com",
    "ann@exämple.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a" * 65 + "@example.com",
    "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".com",
    "a" * 70 + "@" + ".".join(["b" * 60] * 3) + ".com",
]


def _email_validator_accepts(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.mark.parametrize("address", TRICKY)
def test_verdict_is_email_validators(address: str) -> None:
    """For every shape, fast or not, the check accepts exactly what email-validator accepts."""
    assert is_valid_address(address) is _email_validator_accepts(address)


def test_consecutive_dots_are_refused_with_the_reason() -> None:
    """``a..b@x.com`` is refused, saying why."""
    assert address_problem("a..b@x.com") == "An email address cannot have two periods in a row."


def test_remembered_domain_verdict_holds_for_other_local_parts() -> None:
    """A domain judged once gives the same verdict with another local part and another case."""
    assert address_problem("first@Bad_Domain.com") is not None
    assert address_problem("second@bad_domain.COM") is not None
    assert address_problem("first@good.example") is None
    assert address_problem("second@GOOD.example") is None


def test_inline_plan_addresses_use_the_same_check() -> None:
    """An inline recipient in a plan file is refused by the same check, with its reason."""
    with pytest.raises(ValidationError, match="not a valid email address: An email address cannot have two periods"):
        EmailTargets(recipients=("a..b@x.com",))


def test_inline_plan_addresses_are_kept_as_written() -> None:
    """A valid inline address keeps its spelling (the delivery key lower-cases it, not the model)."""
    assert EmailTargets(recipients=("Ada@Example.COM",)).recipients == ("Ada@Example.COM",)
