"""Ad-hoc sends (``comms send``): any message of the plan, now, to chosen audiences and channels.

An ad-hoc send is an ordinary occurrence (trigger ``adhoc``, key ``adhoc:<message>/<n>``, due
now, context ``{"vars": {...}}``), so it takes the same path as every planned message: the
delivery log, idempotency keys, retries. ``--var`` values are data: the rendering layer escapes
them per channel and never compiles them as Jinja. Everything is checked, including a trial
render, before anything is stored, so a bad argument leaves no row behind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from jinja2 import TemplateError, TemplateNotFound, UndefinedError

from comms.core.context import build_context
from comms.errors import CommsError, InputError, NotFoundError
from comms.plan.audiences import Audience
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel
from comms.plan.models import Message, Plan, Trigger
from comms.rendering import Renderer
from comms.services.escalations import due_now
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.tables import CutoverRow

__all__ = ["AdhocOutcome", "parse_vars", "send_adhoc", "split_names"]

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_ATTEMPTS = 5


@dataclass(frozen=True)
class AdhocOutcome:
    """The occurrence an ad-hoc send queued (dispatch it now) and what it targets."""

    occurrence_id: int
    key: str
    audiences: tuple[str, ...]
    channels: tuple[Channel, ...]


def split_names(values: Sequence[str]) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: comma lists and repeated options alike, duplicates dropped."""
    names = [part.strip() for value in values for part in value.split(",")]
    return list(dict.fromkeys(name for name in names if name))


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; the value is kept exactly as typed (it may contain ``=``)."""
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not _VAR_NAME.match(name):
            raise InputError(
                f"--var: expected NAME=VALUE with NAME a letter or _ followed by letters, digits or _, got {pair!r}"
            )
        if name in variables:
            raise InputError(f"--var: {name!r} is given twice")
        variables[name] = value
    return variables


def send_adhoc(
    engine: Engine,
    plans: PlanCache,
    message_key: str,
    *,
    audiences: Sequence[str],
    channels: Sequence[str] = (),
    variables: dict[str, str],
    cutover_name: str | None = None,
    now: datetime,
) -> AdhocOutcome:
    """Check the request, render it once per audience x channel as a trial, then queue it due now."""
    cutover = repo.load_cutover(engine, cutover_name)
    assert cutover.id is not None
    plan, renderer = plans.get(cutover.plan_dir)
    message = _message(plan, message_key)
    chosen = _audiences(plan, audiences)
    kinds = _channels(message, channels)
    pairs = _reachable(chosen, kinds)
    if not pairs:
        raise InputError(
            f"--channel: none of the audiences {', '.join(a.key for a in chosen)} is reached on "
            f"{', '.join(k.value for k in kinds)}"
        )
    _trial_render(plan, renderer, cutover, message, pairs, variables, now=now)
    used_kinds = tuple(k for k in kinds if any(kind is k for _, kind in pairs))
    used_audiences = tuple(a.key for a in chosen if any(audience is a for audience, _ in pairs))
    return _store(engine, cutover.id, message, used_audiences, used_kinds, variables, now=now)


def _message(plan: Plan, key: str) -> Message:
    try:
        return plan.message(key)
    except KeyError:
        known = ", ".join(m.key for m in plan.schedule.messages)
        raise NotFoundError(f"TEMPLATE: the plan has no message {key!r} (known: {known})") from None


def _audiences(plan: Plan, names: Sequence[str]) -> list[Audience]:
    wanted = split_names(names)
    if not wanted:
        raise InputError("--audience: name at least one audience (e.g. --audience engineering,executives)")
    unknown = [name for name in wanted if name not in plan.audiences]
    if unknown:
        raise InputError(
            f"--audience: unknown audience {', '.join(map(repr, unknown))} (known: {', '.join(sorted(plan.audiences))})"
        )
    return [plan.audiences[name] for name in wanted]


def _channels(message: Message, names: Sequence[str]) -> list[Channel]:
    wanted = split_names(names)
    if not wanted:
        return list(message.channels)
    kinds: list[Channel] = []
    for name in wanted:
        try:
            kind = Channel(name)
        except ValueError:
            raise InputError(
                f"--channel: unknown channel {name!r} (choose {', '.join(c.value for c in Channel)})"
            ) from None
        if kind not in message.channels:
            raise InputError(
                f"--channel: message '{message.key}' is not sent on {kind.value} "
                f"(its channels: {', '.join(c.value for c in message.channels)})"
            )
        kinds.append(kind)
    return kinds


def _reachable(audiences: Sequence[Audience], kinds: Sequence[Channel]) -> list[tuple[Audience | None, Channel]]:
    """Each (audience, channel) the send renders; the status page once, with no audience."""
    pairs: list[tuple[Audience | None, Channel]] = []
    for kind in kinds:
        if kind is Channel.STATUSPAGE:
            if any(a.channels.statuspage for a in audiences):
                pairs.append((None, kind))
            continue
        pairs.extend((a, kind) for a in audiences if kind in a.channels.kinds())
    return pairs


def _trial_render(
    plan: Plan,
    renderer: Renderer,
    cutover: CutoverRow,
    message: Message,
    pairs: Sequence[tuple[Audience | None, Channel]],
    variables: dict[str, str],
    *,
    now: datetime,
) -> None:
    for audience, kind in pairs:
        context = build_context(
            plan,
            start=cutover.start,
            message=message,
            audience=audience,
            cutover_name=cutover.name,
            due_at=now,
            extra={"vars": variables},
        )
        try:
            renderer.render(message.key, audience.key if audience else None, kind, context)
        except UndefinedError as exc:
            raise InputError(
                f"--var: message '{message.key}' needs a value that was not given ({exc.message}); "
                "pass it with --var NAME=VALUE"
            ) from None
        except TemplateNotFound as exc:
            raise NotFoundError(
                f"TEMPLATE: message '{message.key}' has no template {exc.name} for {kind.value}"
            ) from None
        except TemplateError as exc:
            raise InputError(f"TEMPLATE: message '{message.key}' cannot be rendered on {kind.value}: {exc}") from None


def _store(
    engine: Engine,
    cutover_id: int,
    message: Message,
    audiences: tuple[str, ...],
    kinds: tuple[Channel, ...],
    variables: dict[str, str],
    *,
    now: datetime,
) -> AdhocOutcome:
    template = due_now(f"adhoc:{message.key}/", message, Trigger.ADHOC, audiences, kinds, {"vars": variables}, now=now)
    queued = occurrence_store.add_numbered_occurrence(engine, cutover_id, template, attempts=_KEY_ATTEMPTS, now=now)
    if queued is None:  # another process took each number we tried
        raise CommsError(f"could not number the ad-hoc send of '{message.key}'; try again")
    return AdhocOutcome(queued.id, queued.key, audiences, kinds)
