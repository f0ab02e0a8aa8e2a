"""The on-disk cache of compiled templates: reused across runs, refreshed on edit, never fatal."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from jinja2.bccache import bc_magic
from typer.testing import Result

from comms.core.content import EmailContent
from comms.plan.fields import Channel
from comms.rendering import Renderer

CONTEXT = {"message": {"title": "Rollback & retry"}}


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A one-message templates folder whose HTML and text bodies include the same shared file."""
    root = tmp_path / "templates"
    (root / "notice").mkdir(parents=True)
    (root / "_shared.j2").write_text("Title: {{ message.title }}\n", encoding="utf-8")
    (root / "notice" / "email.subject.j2").write_text("{{ message.title }}\n", encoding="utf-8")
    (root / "notice" / "email.html.j2").write_text('<p>{% include "_shared.j2" %}</p>\n', encoding="utf-8")
    (root / "notice" / "email.text.j2").write_text('{% include "_shared.j2" %}\n', encoding="utf-8")
    return root


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh COMMS_CACHE_DIR for one test."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("COMMS_CACHE_DIR", str(directory))
    return directory


def _render(templates: Path) -> EmailContent:
    content = Renderer(templates).render("notice", None, Channel.EMAIL, CONTEXT)
    assert isinstance(content, EmailContent)
    return content


def _entries(directory: Path) -> dict[str, int]:
    """Cache file name -> inode (a rewrite replaces the file, so its inode changes)."""
    return {path.name: path.stat().st_ino for path in directory.glob("*.cache")}


def test_a_second_run_reads_compiled_templates_instead_of_rewriting_them(templates: Path, cache_dir: Path) -> None:
    """A second renderer finds every template in the cache: no entry is written again."""
    first = _render(templates)
    written = _entries(cache_dir)
    assert len(written) == 5  # subject, html, text, and the shared include compiled by two environments
    assert _render(templates) == first
    assert _entries(cache_dir) == written


def test_an_edited_template_renders_its_new_text_after_a_cached_run(templates: Path, cache_dir: Path) -> None:
    """Editing a template after a cached run renders the new text, and only its entry is rewritten."""
    _render(templates)
    before = _entries(cache_dir)
    (templates / "notice" / "email.text.j2").write_text("Edited: {{ message.title }}\n", encoding="utf-8")
    content = _render(templates)
    assert content.text == "Edited: Rollback & retry\n"
    after = _entries(cache_dir)
    assert after.keys() == before.keys()
    assert sum(after[name] != before[name] for name in before) == 1


def test_html_and_text_keep_their_own_compiled_code_for_a_shared_file(templates: Path, cache_dir: Path) -> None:
    """A file compiled with autoescape (HTML) and without (text) is cached twice, so neither gets the other's."""
    _render(templates)
    content = _render(templates)
    assert content.html == "<p>Title: Rollback &amp; retry</p>"
    assert content.text == "Title: Rollback & retry\n"


def test_a_directory_that_cannot_be_created_means_rendering_without_a_cache(
    templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache directory under a regular file renders all the same and says why at debug level."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("COMMS_CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level(logging.DEBUG, logger="comms.template_cache"):
        content = _render(templates)
    assert content.subject == "Rollback & retry"
    assert any("no template cache" in record.getMessage() for record in caplog.records)


def test_a_directory_others_may_write_is_not_trusted(
    templates: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Compiled code is never loaded from or written to a folder other users can write."""
    cache_dir.mkdir()
    os.chmod(cache_dir, 0o777)
    with caplog.at_level(logging.DEBUG, logger="comms.template_cache"):
        content = _render(templates)
    assert content.text == "Title: Rollback & retry\n"
    assert _entries(cache_dir) == {}
    assert any("others may write" in record.getMessage() for record in caplog.records)


def test_a_cache_removed_mid_run_costs_only_a_compile(templates: Path, cache_dir: Path) -> None:
    """When the directory disappears after the renderer was built, entries are not written and the render succeeds."""
    renderer = Renderer(templates)
    shutil.rmtree(cache_dir)
    content = renderer.render("notice", None, Channel.EMAIL, CONTEXT)
    assert isinstance(content, EmailContent)
    assert content.subject == "Rollback & retry"
    assert not cache_dir.exists()


def test_a_truncated_entry_is_compiled_again(templates: Path, cache_dir: Path) -> None:
    """An entry cut short after its header is ignored and rewritten, not raised."""
    first = _render(templates)
    for path in cache_dir.glob("*.cache"):
        path.write_bytes(bc_magic + b"\x80")
    assert _render(templates) == first
    assert all(path.stat().st_size > len(bc_magic) + 1 for path in cache_dir.glob("*.cache"))


def test_validate_names_the_same_file_and_line_when_the_template_comes_from_the_cache(
    cli: Callable[..., Result], plan_copy: Path, cache_dir: Path
) -> None:
    """An undefined variable found by `comms validate` is reported at its file and line on a cached run too."""
    template = plan_copy / "templates/reminder/email.text.j2"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace("{{ cutover.title }}", "{{ event.reason }} {{ cutover.title }}", 1), "utf-8")
    line = next(n for n, row in enumerate(template.read_text("utf-8").splitlines(), start=1) if "event.reason" in row)
    first = cli("validate", "--plan", plan_copy)
    assert any(cache_dir.glob("*.cache"))
    second = cli("validate", "--plan", plan_copy)
    assert first.exit_code == second.exit_code == 2
    assert f"templates/reminder/email.text.j2:{line}: template uses a variable" in " ".join(second.output.split())
    assert second.output == first.output


def test_code_compiled_before_a_filter_took_the_context_is_not_reused(tmp_path: Path, cache_dir: Path) -> None:
    """A filter that becomes ``@pass_context`` in a newer release gets fresh code, not the old call without it.

    The cached code of the older release calls ``duration(value)``; reused by the newer one, whose filter
    wants ``duration(context, value)``, every template failed with a TypeError (seen after an upgrade).
    """
    from datetime import timedelta

    from jinja2 import Environment, FileSystemLoader, pass_context
    from jinja2.runtime import Context

    from comms.template_cache import template_bytecode_cache

    (tmp_path / "t.j2").write_text("{{ window | duration }}", encoding="utf-8")

    def older(delta: timedelta) -> str:
        return f"{delta.seconds // 3600} hours"

    @pass_context
    def newer(context: Context, delta: timedelta) -> str:
        return f"{delta.seconds // 3600} Stunden" if context.get("locale") == "de" else older(delta)

    rendered = []
    for duration in (older, newer):
        environment = Environment(loader=FileSystemLoader(str(tmp_path)))
        environment.filters["duration"] = duration
        environment.bytecode_cache = template_bytecode_cache(environment)
        rendered.append(environment.get_template("t.j2").render(window=timedelta(hours=12), locale="de"))
    assert rendered == ["12 hours", "12 Stunden"]
    assert len(list(cache_dir.glob("*.cache"))) == 2
