"""The channel registry: one spec per kind, the one source of template parts, and the import rules it keeps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from comms.channels.registry import SPECS, channel_spec
from comms.plan.audiences import AudienceChannels
from comms.plan.fields import Channel
from comms.rendering import PART_FILES, Renderer

COMMS = Path(__file__).resolve().parents[2] / "comms"


def _imports(folder: Path) -> set[tuple[str, str]]:
    """(module file, imported module) for every import under a package folder."""
    found: set[tuple[str, str]] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((path.name, node.module))
            elif isinstance(node, ast.Import):
                found.update((path.name, alias.name) for alias in node.names)
    return found


def test_every_channel_kind_has_a_spec_in_enum_order():
    """The registry lists each Channel value once, in the enum's order."""
    assert list(SPECS) == list(Channel) and all(channel_spec(kind).kind is kind for kind in Channel)


def test_rendering_part_files_come_from_the_registry():
    """rendering.PART_FILES is the registry's parts, not a second table."""
    assert all(PART_FILES[kind] is SPECS[kind].parts for kind in Channel)


def test_every_kind_is_an_audience_field():
    """Each Channel value names an AudienceChannels field, which is how kinds() finds it."""
    assert set(AudienceChannels.model_fields) == {kind.value for kind in Channel}


def test_channels_import_no_store_delivery_or_services():
    """comms/channels/ imports nothing from comms.store, comms.delivery or comms.services."""
    forbidden = ("comms.store", "comms.delivery", "comms.services")
    bad = sorted((f, m) for f, m in _imports(COMMS / "channels") if m.startswith(forbidden))
    assert not bad


def test_core_imports_no_channels():
    """comms/core/ imports nothing from comms.channels."""
    assert not sorted((f, m) for f, m in _imports(COMMS / "core") if m.startswith("comms.channels"))


def test_webhook_templates_fall_back_to_the_email_parts(tmp_path):
    """A webhook part tries webhook.*.j2 (audience first), then the email file (audience first)."""
    names = Renderer(tmp_path).candidates("reminder", "support", Channel.WEBHOOK, "text")
    assert names == [
        "reminder/support/webhook.text.j2",
        "reminder/webhook.text.j2",
        "reminder/support/email.text.j2",
        "reminder/email.text.j2",
    ]


def test_status_page_has_no_audience_templates(tmp_path):
    """The status page is sent once per message: only the message's own template is tried."""
    assert Renderer(tmp_path).candidates("reminder", "support", Channel.STATUSPAGE, "title") == [
        "reminder/statuspage.title.j2"
    ]


@pytest.mark.parametrize(
    "urls",
    [
        ["ftp://hooks.example.com/x"],
        ["hooks.example.com/x"],
        ["https://user:pw@hooks.example.com/x"],
        ["https://h.example.com/A", "https://h.example.com/a"],
        [],
    ],
)
def test_bad_webhook_urls_are_refused(urls):
    """Webhook URLs must be http(s) with a host, carry no credentials, be unique ignoring case, and exist."""
    with pytest.raises(ValidationError):
        AudienceChannels.model_validate({"webhook": {"urls": urls}})


def test_webhook_audience_is_reached_by_webhook():
    """An audience with webhook URLs lists the webhook among its channel kinds."""
    channels = AudienceChannels.model_validate({"webhook": {"urls": ["https://hooks.example.com/cutover"]}})
    assert channels.kinds() == frozenset({Channel.WEBHOOK})
