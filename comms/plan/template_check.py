"""Template checks of a loaded plan: every sent combination has its templates, compiles, and renders."""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError

from comms.core.context import sample_context
from comms.core.locale_format import is_default
from comms.core.phases import Phase, phase_of
from comms.errors import Problem
from comms.plan.fields import Channel
from comms.plan.loader import display_path, sent_combinations
from comms.plan.models import Plan
from comms.rendering import PART_FILES, Renderer

__all__ = ["check_templates", "fixed_duration_warnings", "missing_locale_variants"]


def check_templates(plan: Plan) -> list[Problem]:
    """Render every (message, audience, channel) the plan sends with sample data; report what fails."""
    root = plan.root / "templates"
    renderer = Renderer(root)
    problems: list[Problem] = []
    seen: set[str] = set()
    missing: dict[str, list[str]] = {}
    for message_key, audience_key, channel in sent_combinations(plan):
        message = plan.message(message_key)
        audience = plan.audiences[audience_key] if audience_key else None
        absent = [
            renderer.candidates(message_key, audience_key, channel, part)[-1]
            for part in PART_FILES[channel]
            if renderer.resolve(message_key, audience_key, channel, part) is None
        ]
        for wanted in absent:
            missing.setdefault(wanted, []).append(audience_key or "the status page")
        if absent:
            continue
        try:
            for view in audience.reader_groups() if audience and channel is Channel.EMAIL else [audience]:
                renderer.render(message_key, audience_key, channel, sample_context(plan, message, view))
        except TemplateSyntaxError as exc:
            name = exc.filename or exc.name or "?"
            if name not in seen:
                seen.add(name)
                problems.append(Problem(display_path(Path(name)), f"template syntax error: {exc.message}", exc.lineno))
        except UndefinedError as exc:
            file, line = _template_frame(exc)
            problems.append(
                Problem(
                    display_path(Path(file)) if file else display_path(root / message_key),
                    f"template uses a variable that is never provided for '{message_key}'"
                    f"{' / ' + audience_key if audience_key else ''} on {channel}: {exc.message}",
                    line,
                )
            )
        except TemplateError as exc:
            problems.append(Problem(display_path(root / message_key), f"template error on {channel}: {exc}"))
    absent_problems = [
        Problem(
            display_path(root / wanted),
            f"template missing: message '{wanted.split('/', 1)[0]}' is sent with it to {', '.join(needed_by)}",
        )
        for wanted, needed_by in missing.items()
    ]
    return absent_problems + problems


def missing_locale_variants(plan: Plan) -> list[str]:
    """Per audience with a locale, the messages it is sent without that locale's variant (in English, then)."""
    renderer = Renderer(plan.root / "templates")
    missing: dict[tuple[str, str], list[str]] = {}
    for message_key, audience_key, channel in sent_combinations(plan):
        audience = plan.audiences.get(audience_key) if audience_key else None
        if audience is None:
            continue
        views = audience.reader_groups() if channel is Channel.EMAIL else [audience]
        for view in views:
            if view.locale is None or is_default(view.locale):
                continue
            parts = PART_FILES[channel]
            if any(renderer.localized(message_key, audience_key, channel, part, view.locale) is None for part in parts):
                missing.setdefault((audience.key, view.locale), []).append(f"{message_key} ({channel})")
    return [
        f"audience '{key}' reads {locale}, but {len(found)} message(s) have no {locale} variant and go in English: "
        + ", ".join(found)
        for (key, locale), found in missing.items()
    ]


def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost template file and line in a Jinja traceback (Jinja rewrites frames to them)."""
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


_FIXED_DURATION = re.compile(
    r"\b(?:starts?|begins?|ends?|opens?|closes?)\s+in\s+\d+\s+(?:hours?|days?|minutes?)\b"
    r"|\b\d+\s+(?:hours?|days?|minutes?)\s+from\s+now\b"
    r"|^(?:Subject:\s*)?In\s+\d+\s+(?:hours?|days?|minutes?)\b",
    re.IGNORECASE | re.MULTILINE,
)


def fixed_duration_warnings(plan: Plan) -> list[Problem]:
    """Templates (and titles) of messages sent before T0 or in the window that state a fixed time until it.

    A message may leave later than planned (a retry, a late schedule, an ad-hoc send): ``send.starts_in``
    and ``send.ends_in`` are computed when it leaves and stay true.
    """
    root = plan.root / "templates"
    warnings: list[Problem] = []
    for message in plan.schedule.messages:
        if phase_of(plan, message) is Phase.AFTER:
            continue
        hint = "send.starts_in" if phase_of(plan, message) is Phase.BEFORE else "send.ends_in"
        found = _FIXED_DURATION.search(message.title)
        if found:
            warnings.append(
                Problem(
                    "schedules/cutover.yaml",
                    f"message '{message.key}' title states a fixed duration ({found.group(0)!r}); "
                    "it is no longer true if the message leaves late",
                )
            )
        folder = root / message.key
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.j2")):
            text = path.read_text(encoding="utf-8")
            for match in _FIXED_DURATION.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                warnings.append(
                    Problem(
                        display_path(path),
                        f"states a fixed duration ({match.group(0)!r}); use {{{{ {hint} }}}}, computed when it leaves",
                        line,
                    )
                )
    return warnings
