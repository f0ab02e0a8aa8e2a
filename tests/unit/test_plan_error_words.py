"""Validation errors speak the plan's words: keys, lists, mappings, text; never a pydantic class name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comms.plan.fields import Channel
from comms.plan.loader import inspect_plan
from comms.plan.models import CutoverSpec
from comms.plan.scaffold import default_audiences, write_plan


@pytest.fixture
def scaffold(tmp_path: Path) -> Path:
    write_plan(tmp_path, audiences=default_audiences((Channel.EMAIL, Channel.SLACK)))
    return tmp_path


def _problems(root: Path) -> list[str]:
    plan, problems = inspect_plan(root, check_templates=False)
    return [p.message for p in problems]


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_slack_given_as_text_names_the_keys_not_the_class(scaffold: Path) -> None:
    """`slack: "#team"` says slack must be a mapping with key 'channels', never 'SlackTargets'."""
    _replace(scaffold / "audiences/team.yaml", 'slack:\n    channels: ["#maintenance"]', 'slack: "#team"\n   ')
    (message,) = _problems(scaffold)
    assert message == "channels.slack: must be a mapping of keys (channels, fallback), got '#team'"


def test_list_given_as_text_asks_for_a_list(scaffold: Path) -> None:
    """`audiences: customers` says it must be a list, not 'a valid tuple'."""
    _replace(scaffold / "schedules/cutover.yaml", "audiences: [customers, team]", "audiences: customers")
    problems = _problems(scaffold)
    assert problems and all(p.endswith("audiences: must be a list such as [a, b], got 'customers'") for p in problems)


def test_no_problem_names_a_model_class(scaffold: Path) -> None:
    """Wrong kinds of value all over the plan: no message mentions a model class, 'tuple' or 'dictionary'."""
    _replace(scaffold / "audiences/customers.yaml", "title: Customers", "title: [a, b]")
    _replace(scaffold / "audiences/customers.yaml", "email:\n", "email: yes\n  old_email:\n")
    _replace(scaffold / "schedules/cutover.yaml", "cutover:\n", "statuspage: [a]\ncutover:\n")
    problems = _problems(scaffold)
    assert len(problems) >= 3
    classes = re.compile(r"Targets|Channels|Settings|Spec|instance of|tuple|dictionary|Input should")
    assert not [p for p in problems if classes.search(p)], problems


def test_traffic_stages_default_is_one_stage_of_100() -> None:
    """A cutover that names no stages switches all traffic at once, so 'complete' needs one stage event."""
    spec = CutoverSpec(name="x", title="X", status_page_url="https://status.example.com")
    assert spec.traffic_stages == (100,)
