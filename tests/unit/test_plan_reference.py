"""The plan reference: JSON Schemas, docs/PLAN.md and docs/TEMPLATES.md are generated from the models and current."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from comms.plan import audiences, models
from comms.plan.fields import Channel
from comms.plan.models import Plan
from comms.plan.reference import main, plan_reference
from comms.plan.scaffold import default_audiences, write_plan
from comms.plan.schema import audience_schema, escalation_schema, schedule_schema
from comms.plan.template_vars import message_variables, template_filters

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN_FILE_MODELS = [
    m
    for module in (models, audiences)
    for m in vars(module).values()
    if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == module.__name__ and m is not Plan
]


def test_docs_are_up_to_date_with_the_models() -> None:
    """docs/PLAN.md and docs/TEMPLATES.md are what `python -m comms.plan.reference` writes today."""
    assert main(["--check", "--plan", str(REPO_ROOT), "--docs", str(REPO_ROOT / "docs")]) == 0


def test_check_notices_a_stale_file(tmp_path: Path) -> None:
    """--check exits 1 when a generated file differs, and a plain run rewrites it."""
    (tmp_path / "PLAN.md").write_text("old\n")
    args = ["--plan", str(REPO_ROOT), "--docs", str(tmp_path)]
    assert main(["--check", *args]) == 1
    assert main(args) == 0 and main(["--check", *args]) == 0


@pytest.mark.parametrize("model", PLAN_FILE_MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented_with_an_example(model: type[BaseModel]) -> None:
    """Every field of a plan-file model has a description in PLAN.md, with an example unless it is a section."""
    reference = plan_reference()
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        if name in ("key", "source"):
            continue
        key = info.alias or name
        assert f"{key}` |" in reference, key
        nested = isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        assert "e.g." in info.description or nested or name == "channels", f"{model.__name__}.{name}: no example"


def test_default_plan_files_match_their_schemas() -> None:
    """The shipped audience, schedule and escalation files validate against the generated JSON Schemas."""
    for path in (REPO_ROOT / "audiences").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), audience_schema())
    jsonschema.validate(yaml.safe_load((REPO_ROOT / "schedules/cutover.yaml").read_text()), schedule_schema())
    jsonschema.validate(yaml.safe_load((REPO_ROOT / "schedules/escalation.yaml").read_text()), escalation_schema())


def test_scaffold_files_match_their_schemas(tmp_path: Path) -> None:
    """The files `comms init` writes validate against the schemas they name."""
    write_plan(tmp_path, audiences=default_audiences(tuple(Channel)))
    for path in (tmp_path / "audiences").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), audience_schema())
    jsonschema.validate(yaml.safe_load((tmp_path / "schedules/cutover.yaml").read_text()), schedule_schema())


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["channels"].update(sms={"to": ["1"]}), "sms"),
        (lambda d: d.update(timezone=5), "5"),
        (lambda d: d["channels"].update(slack={"channels": []}), "[]"),
    ],
)
def test_audience_schema_rejects_what_validation_rejects(edit, where: str) -> None:  # type: ignore[no-untyped-def]
    """An unknown key, a zone that is not text, an empty Slack list: the schema says no, as the loader does."""
    data = yaml.safe_load((REPO_ROOT / "audiences/executives.yaml").read_text())
    edit(data)
    with pytest.raises(jsonschema.ValidationError, match=None) as caught:
        jsonschema.validate(data, audience_schema())
    assert where in str(caught.value)


def test_schedule_schema_checks_offsets_and_message_keys() -> None:
    """An offset like 'in 2 hours' and a message key with capitals fail the schedule schema."""
    data = yaml.safe_load((REPO_ROOT / "schedules/cutover.yaml").read_text())
    data["messages"]["reminder"]["at"] = "in 2 hours"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schedule_schema())
    data = yaml.safe_load((REPO_ROOT / "schedules/cutover.yaml").read_text())
    data["messages"]["Reminder"] = data["messages"].pop("reminder")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schedule_schema())


def test_vars_of_an_event_message_include_its_event_data(default_plan: Plan) -> None:
    """A go message sees event.decided_at and event.by; a time-based one has no event at all."""
    go = {v.name: v.example for v in message_variables(default_plan, "go-decision")}
    assert go["event.by"] == "Comms lead" and go["event.decided_at"].startswith("2026-12-05T20:00:00Z")
    assert not [v for v in message_variables(default_plan, "reminder") if v.name.startswith("event.")]


def test_every_filter_is_listed_with_a_rendered_example() -> None:
    """Each filter of the rendering environment is listed and its example is what it renders."""
    from comms.rendering import Renderer

    listed = {f.usage.split("(")[0].removeprefix("| ") for f in template_filters()}
    own = set(Renderer(REPO_ROOT / "templates")._text.filters) - set(__import__("jinja2").defaults.DEFAULT_FILTERS)
    assert listed == own
    examples = {f.usage: f.example for f in template_filters()}
    assert examples["| when"] == "Sat 5 Dec 2026, 17:00 EST (22:00 UTC)" and examples["| duration"] == "12 hours"
