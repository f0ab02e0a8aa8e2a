"""Golden previews: every (message, audience, channel) the default plan sends, rendered and compared.

Each combination from ``sent_combinations`` is rendered with ``render_preview`` (T0 = the sample
start, sample event data) and compared with its file under ``tests/golden/<message>/``:
``<audience>.email.txt`` (subject, text, HTML), ``<audience>.slack.json`` (fallback text and
blocks) and ``status-page.statuspage.txt`` (title and body).

After a deliberate wording change, regenerate and review the diff:

    /work/venv/bin/pytest tests/unit/test_templates_golden.py --update-golden
    git diff tests/golden/
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from comms.core.content import EmailContent, SlackContent, StatuspageContent
from comms.plan.fields import Channel
from comms.plan.loader import load_plan, sent_combinations
from comms.plan.models import Plan
from comms.reports.preview import Preview, render_preview

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN = REPO_ROOT / "tests" / "golden"
COMBINATIONS = sent_combinations(load_plan(REPO_ROOT, check_templates=False))
SUFFIX = {Channel.EMAIL: "email.txt", Channel.SLACK: "slack.json", Channel.STATUSPAGE: "statuspage.txt"}


def golden_path(message: str, audience: str | None, channel: Channel) -> Path:
    """Where the golden rendering of one combination lives."""
    return GOLDEN / message / f"{audience or 'status-page'}.{SUFFIX[channel]}"


def serialize(preview: Preview) -> str:
    """A stable, reviewable text form of a rendered combination."""
    content = preview.content
    if isinstance(content, EmailContent):
        return f"Subject: {content.subject}\n\n----- text -----\n{content.text}\n----- html -----\n{content.html}\n"
    if isinstance(content, SlackContent):
        return json.dumps({"text": content.text, "blocks": list(content.blocks)}, indent=2, ensure_ascii=False) + "\n"
    assert isinstance(content, StatuspageContent)
    return f"{content.title}\n\n{content.body}\n"


@pytest.mark.parametrize(
    ("message", "audience", "channel"),
    COMBINATIONS,
    ids=[f"{m}-{a or 'status-page'}-{c.value}" for m, a, c in COMBINATIONS],
)
def test_rendering_matches_golden(
    default_plan: Plan, update_golden: bool, message: str, audience: str | None, channel: Channel
) -> None:
    """The rendered combination equals its golden file (rewritten instead with --update-golden)."""
    actual = serialize(render_preview(default_plan, message=message, audience=audience, channel=channel))
    path = golden_path(message, audience, channel)
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {path.relative_to(REPO_ROOT)}; run pytest with --update-golden"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{path.relative_to(REPO_ROOT)} differs; review, then --update-golden"
    )


def test_every_golden_file_belongs_to_a_sent_combination(update_golden: bool) -> None:
    """No stale golden file is left for a combination the plan no longer sends (removed with --update-golden)."""
    expected = {golden_path(*combo) for combo in COMBINATIONS}
    stale = sorted(path for path in GOLDEN.rglob("*") if path.is_file() and path not in expected)
    if update_golden:
        for path in stale:
            path.unlink()
        return
    assert not stale, f"stale golden files: {[str(p.relative_to(REPO_ROOT)) for p in stale]}"


def test_golden_covers_every_message(default_plan: Plan) -> None:
    """Every message of the plan has at least one golden rendering."""
    assert {m for m, _, _ in COMBINATIONS} == {m.key for m in default_plan.schedule.messages}


SLACK_COMBINATIONS = [combo for combo in COMBINATIONS if combo[2] is Channel.SLACK]


@pytest.mark.parametrize(
    ("message", "audience", "channel"), SLACK_COMBINATIONS, ids=[f"{m}-{a}" for m, a, _ in SLACK_COMBINATIONS]
)
def test_slack_output_has_no_bare_angle_brackets(
    default_plan: Plan, message: str, audience: str, channel: Channel
) -> None:
    """Slack text holds < and > only inside <url|label> links; template prose uses &lt; and &gt;."""
    content = render_preview(default_plan, message=message, audience=audience, channel=channel).content
    assert isinstance(content, SlackContent)
    for block in content.blocks:
        if block["type"] == "section":
            prose = re.sub(r"<https?://[^<>|\s]+(\|[^<>]+)?>", "", block["text"]["text"])
            assert "<" not in prose and ">" not in prose, block["text"]["text"]
