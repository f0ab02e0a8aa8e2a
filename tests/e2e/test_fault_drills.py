"""The fast fault drills of bench/fault_drills.py: kills of the real worker, and a misbehaving SendGrid.

Small sizes (a few thousand recipients) so the file runs in well under a minute; the full-size drills
(100k recipients, 10 kills, 20 % faults) are ``python bench/fault_drills.py``. The drill code lives in
``bench/_drills.py`` so both run the same checks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _drills  # noqa: E402

pytestmark = pytest.mark.slow


def test_sigkill_at_random_points_loses_nothing_and_doubles_only_uncertain(tmp_path: Path) -> None:
    """SIGKILLed three times and restarted, the worker loses no recipient; only uncertain ones may arrive twice."""
    result = _drills.kill_drill(tmp_path, recipients=6000, kills=3, seed=3, slow_share=0.6, log=lambda _: None)

    assert result.lost == 0, result.kills
    assert result.final_states == {"sent": 6000}
    assert all(count <= result.in_flight_limit for count in result.in_flight_at_kill), result.kills
    assert result.uncertain_never_left == 0, result.kills
    assert result.duplicates_outside_uncertain == 0
    assert result.duplicates <= result.uncertain


def test_random_5xx_429_drops_and_slow_answers_still_deliver_everyone_once(tmp_path: Path) -> None:
    """Half the requests failing (5xx, 429 with X-RateLimit-Reset, drops, slow answers): all delivered, none twice blindly."""
    faults = _drills.FaultPlan(
        rate=0.5, kinds=("5xx", "429-reset", "drop", "slow"), retry_after=(1.0, 1.0), slow=(0.1, 0.4), seed=5
    )
    result = _drills.fault_drill(tmp_path, recipients=8000, faults=faults, client_timeout=2.0, retry_base=0.2)

    assert result.lost == 0
    assert result.final_states == {"sent": 8000}
    assert result.duplicates_outside_uncertain == 0
    assert set(result.by_kind) - {"ok"}, "the drill played no fault at all"


def test_deliveries_refused_with_ratelimit_reset_wait_until_the_reset(tmp_path: Path) -> None:
    """A batch answered 429 with X-RateLimit-Reset is not sent again before that reset."""

    def rate_limit_first(fake: _drills.DrillSendGrid) -> None:
        fake.rate_limit_next(1, reset_at=int(time.time()) + 2)

    result = _drills.fault_drill(
        tmp_path, recipients=2000, faults=_drills.FaultPlan(rate=0.0), retry_base=0.1, prepare=rate_limit_first
    )

    assert result.lost == 0
    assert result.by_kind.get("429-reset") == 1
    assert result.same_deliveries_early == []


def test_deliveries_refused_with_retry_after_wait_that_long(tmp_path: Path) -> None:
    """A batch answered 429 with Retry-After: 2 is not sent again within those 2 seconds."""

    def retry_after_first(fake: _drills.DrillSendGrid) -> None:
        fake.fail_next(1, status=429, body={"errors": [{"message": "too many requests"}]}, headers={"Retry-After": "2"})

    result = _drills.fault_drill(
        tmp_path, recipients=1000, faults=_drills.FaultPlan(rate=0.0), retry_base=0.1, prepare=retry_after_first
    )

    assert result.lost == 0
    assert result.same_deliveries_early == []


def test_no_request_leaves_before_the_ratelimit_reset(tmp_path: Path) -> None:
    """After a 429 with X-RateLimit-Reset, no request of any batch reaches SendGrid before the reset.

    At one request in flight the rule is exact; at K, the K-1 requests already out when the 429 came back
    may still arrive (the drill allows them only within ``IN_FLIGHT_GRACE``; the full drill runs at K).
    """

    def rate_limit_first(fake: _drills.DrillSendGrid) -> None:
        fake.rate_limit_next(1, reset_at=int(time.time()) + 2)

    result = _drills.fault_drill(
        tmp_path,
        recipients=3000,
        faults=_drills.FaultPlan(rate=0.0),
        retry_base=0.1,
        prepare=rate_limit_first,
        max_in_flight=1,
    )

    assert result.lost == 0
    assert result.any_request_early == []


def test_an_answer_after_the_client_timeout_is_not_delivered_twice(tmp_path: Path) -> None:
    """A request the fake accepts only after the client's timeout is flagged uncertain, not re-sent blindly."""

    def answer_late(fake: _drills.DrillSendGrid) -> None:
        fake.fail_next(1, delay=1.5)

    faults = _drills.FaultPlan(rate=0.0, late_after=1.5)
    result = _drills.fault_drill(
        tmp_path, recipients=1000, faults=faults, client_timeout=1.0, retry_base=0.1, prepare=answer_late
    )

    assert result.lost == 0
    assert result.duplicates_outside_uncertain == 0
