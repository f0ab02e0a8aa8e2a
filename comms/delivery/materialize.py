"""Turning a due occurrence into rendered contents and delivery rows (one per recipient or target).

Rendering happens once per audience x channel; recipients stream from the CSV into the store in
chunks of ``INSERT_BATCH`` rows, one short transaction each, in batches of one request's size (the
ledger's unit of state). The writer keeps the addresses each lane has in memory (read from the store
first, so a crash mid-way just resumes): a repeat is skipped, a person another audience already gets is
written ``covered``; nothing is indexed per recipient. ``materialize`` is a generator: the sender
advances it one chunk between its send passes (or a child process runs it, ``writer_process``), so the
first request of a million-recipient message leaves after one chunk, and an operator's command never
waits behind a long write.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

from comms.channels.base import SUPPRESSED, Target, target_state
from comms.channels.registry import channel_spec
from comms.core import jsoncodec
from comms.core.content import content_hash, content_to_json
from comms.core.context import build_context
from comms.core.phases import statuspage_status_to_send
from comms.plan.audiences import Audience
from comms.plan.fields import Channel
from comms.plan.models import Message, Plan
from comms.rendering import Renderer
from comms.store import recipient_writes
from comms.store.recipient_writes import RecipientValues
from comms.store.statuspage_history import statuspage_sent
from comms.store.tables import ContentRow, CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction, save
from comms.store.unsubscribes import unsubscribed_addresses

__all__ = [
    "ChunkGuard",
    "DIRECT_AUDIENCE",
    "FillLost",
    "INSERT_BATCH",
    "MetricsProvider",
    "STATUS_PAGE_AUDIENCE",
    "Written",
    "audience_targets",
    "content_audience",
    "delivery_key",
    "materialize",
    "materialize_all",
    "one_copy_order",
    "render_content",
    "render_extras",
]

DIRECT_AUDIENCE = "direct"
"""Deliveries to contacts named directly (escalation e-mails, Slack users) rather than via an audience."""
STATUS_PAGE_AUDIENCE = "status-page"
INSERT_BATCH = 5000
PENDING = "pending"

MetricsProvider = Callable[[Transaction, CutoverRow], dict[str, Any]]
ChunkGuard = Callable[[Transaction], bool]
"""Asked in a chunk's transaction before it commits: may this writer still write the occurrence's rows?"""


class FillLost(Exception):
    """The writer lost the fill lease before a chunk committed: the chunk is rolled back, another carries on."""


class Written(NamedTuple):
    """One committed chunk of an occurrence's deliveries: the lane its rows belong to, how many, and how many
    of them are to be sent (pending: not an invalid or unsubscribed address, not an ended occurrence's)."""

    audience: str
    channel: str
    content_id: int
    rows: int
    pending: int


def delivery_key(cutover: str, occurrence: str, audience: str, channel: str, recipient: str) -> str:
    """The deterministic idempotency key of one delivery."""
    return f"{cutover}|{occurrence}|{audience}|{channel}|{recipient.lower()}"


def content_audience(audience: Audience) -> str:
    """The audience name a content is stored under: ``end-users``, or ``end-users@de`` for a language view."""
    return f"{audience.key}@{audience.locale}" if audience.locale in audience.locales else audience.key


def materialize_all(
    tx: Transaction,
    plan: Plan,
    renderer: Renderer,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    *,
    now: datetime,
    metrics: MetricsProvider,
) -> int:
    """Run ``materialize`` to the end; return how many delivery rows it wrote."""
    return sum(chunk.rows for chunk in materialize(tx, plan, renderer, cutover, occurrence, now=now, metrics=metrics))


def materialize(
    tx: Transaction,
    plan: Plan,
    renderer: Renderer,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    *,
    now: datetime,
    metrics: MetricsProvider,
    ending: tuple[str, str] | None = None,
    resuming: bool = False,
    guard: ChunkGuard | None = None,
) -> Generator[Written, None, None]:
    """Render and store every content of the occurrence and insert its deliveries, chunk by chunk.

    The occurrence is ``dispatching`` (its rows claimable) from the first commit and ``materialized``
    after the last; each chunk is committed before it is yielded (its lane and row count). ``ending``
    (state, reason) writes the rows of an occurrence that ended while it was being written (cancelled,
    missed) in that state, never to be sent: what was not written yet is recorded, not forgotten.
    ``resuming`` carries on an occurrence already ``dispatching`` (the sender wrote its first rows).
    ``guard`` is asked in each chunk's transaction, before it commits, whether this writer may still write
    (it holds the fill lease); when not, the chunk is rolled back and ``FillLost`` raised.
    """
    message = plan.message(occurrence.message)
    extra, direct = render_extras(tx, cutover, occurrence, message, metrics)
    if ending is None and not resuming:
        occurrence.state = "dispatching"
        save(tx, occurrence)
        tx.commit()
    channels = [Channel(c) for c in occurrence.channels_csv.split(",") if c]
    write = partial(
        _materialize_one,
        tx,
        plan,
        renderer,
        cutover,
        occurrence,
        extra=extra,
        written=_LaneAddresses(tx, occurrence),
        now=now,
        guard=guard,
    )
    audiences = one_copy_order(plan.audiences[a] for a in occurrence.audiences_csv.split(",") if a in plan.audiences)
    for channel in channels:
        if not channel_spec(channel).per_audience:  # the status page: once, whichever audiences it serves
            if any(channel in a.channels.kinds() for a in audiences):
                ended = ending or _statuspage_backwards(tx, plan, cutover, occurrence, message)
                yield from write(None, channel, ended=ended)
            continue
        winners: list[str] = []
        for audience in audiences:
            if channel in audience.channels.kinds():
                for readers in audience.reader_groups() if channel is Channel.EMAIL else [audience]:
                    yield from write(readers, channel, covering=winners, ended=ending)
                winners.append(audience.key)
    for channel_name, addresses in sorted(direct.items()):
        if addresses:
            yield from write(None, Channel(channel_name), direct=addresses, ended=ending)
    occurrence.materialized = True
    save(tx, occurrence)
    tx.commit()


def _materialize_one(
    tx: Transaction,
    plan: Plan,
    renderer: Renderer,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    audience: Audience | None,
    channel: Channel,
    extra: dict[str, Any],
    written: _LaneAddresses,
    *,
    now: datetime,
    direct: list[str] | None = None,
    covering: list[str] | None = None,
    ended: tuple[str, str] | None = None,
    guard: ChunkGuard | None = None,
) -> Iterator[Written]:
    audience_key = audience.key if audience else DIRECT_AUDIENCE if direct else STATUS_PAGE_AUDIENCE
    content_key = content_audience(audience) if audience else audience_key
    assert occurrence.id is not None and cutover.id is not None
    content_row = recipient_writes.find_content(tx, occurrence.id, content_key, channel.value)
    if content_row is None:
        body = render_content(plan, renderer, cutover, occurrence, audience, channel, extra, now=now)
        content_row = ContentRow(
            occurrence_id=occurrence.id,
            audience=content_key,
            channel=channel.value,
            body_json=body,
            sha256=content_hash(body),
        )
        content_row = recipient_writes.add_content(tx, content_row)  # another worker may have stored it first
    assert content_row.id is not None
    targets = ((address, None, None) for address in direct) if direct else audience_targets(tx, audience, channel)
    lane = recipient_writes.LaneOf(cutover.id, occurrence.id, content_row.id, audience_key, channel.value)
    state, reason = ended or (PENDING, None)
    key_prefix = delivery_key(cutover.name, occurrence.key, audience_key, channel.value, "")
    seen = written.of(audience_key, channel.value)
    winners = [(winner, written.of(winner, channel.value)) for winner in covering or ()]
    for chunk in _chunks(targets, INSERT_BATCH):
        rows: list[RecipientValues] = []
        for address, name, problem in chunk:
            folded = address.lower()
            if folded in seen:
                continue  # written before this run (it resumes), or a repeat in the CSV: one delivery each
            seen.add(folded)
            if problem:
                rows.append((key_prefix + folded, address, name, target_state(problem), problem))
                continue
            # one copy per person: an earlier audience's row covers this one
            winner = next((key for key, addresses in winners if folded in addresses), None)
            covered = f"covered by the copy to audience '{winner}'" if winner else None
            rows.append((key_prefix + folded, address, name, "covered" if winner else None, covered))
        if not rows:
            continue
        batches = recipient_writes.write_recipients(
            tx, lane, rows, batch_size=channel_spec(channel).batch, now=now, state=state, reason=reason
        )
        pending = recipient_writes.count_batches(tx, batches)
        if guard is not None and not guard(tx):
            tx.rollback()
            raise FillLost(f"another writer carries on writing {occurrence.key}'s rows")
        tx.commit()
        yield Written(audience_key, channel.value, content_row.id, len(rows), pending)


class _LaneAddresses:
    """The addresses each lane of an occurrence has (lower case), read from the store the first time a lane is
    asked for and kept up as its rows are written: repeats are skipped and copies covered without an index."""

    def __init__(self, tx: Transaction, occurrence: OccurrenceRow) -> None:
        assert occurrence.id is not None
        self._tx, self._occurrence_id = tx, occurrence.id
        self._lanes: dict[tuple[str, str], set[str]] = {}

    def of(self, audience: str, channel: str) -> set[str]:
        lane = self._lanes.get((audience, channel))
        if lane is None:
            lane = self._lanes[(audience, channel)] = recipient_writes.lane_addresses(
                self._tx, self._occurrence_id, audience, channel
            )
        return lane


def render_extras(
    tx: Transaction, cutover: CutoverRow, occurrence: OccurrenceRow, message: Message, metrics: MetricsProvider
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What an occurrence's stored context adds to its rendering (metrics included when the message asks),
    and apart from it the contacts it names directly per channel."""
    extra: dict[str, Any] = dict(jsoncodec.loads(occurrence.context_json) or {})
    direct: dict[str, list[str]] = extra.pop("direct", None) or {}
    extra.pop("statuspage_override", None)
    if message.with_metrics:
        extra["metrics"] = metrics(tx, cutover)
    return extra, direct


def render_content(
    plan: Plan,
    renderer: Renderer,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    audience: Audience | None,
    channel: Channel,
    extra: dict[str, Any],
    *,
    now: datetime,
) -> str:
    """The occurrence rendered for one audience (None: the status page, direct contacts) and channel, as JSON.

    The facts it states (reach, time until T0) are as they are ``now``, when it leaves.
    """
    context = build_context(
        plan,
        start=cutover.start,
        message=plan.message(occurrence.message),
        audience=audience,
        cutover_name=cutover.name,
        due_at=occurrence.due_at,
        sequence=occurrence.sequence,
        total=occurrence.total,
        extra=extra,
        now=now,
        audiences=[a for a in occurrence.audiences_csv.split(",") if a],
        channels=[Channel(c) for c in occurrence.channels_csv.split(",") if c],
    )
    return content_to_json(renderer.render(occurrence.message, audience.key if audience else None, channel, context))


UNSUBSCRIBED_BY_LINK = f"{SUPPRESSED}unsubscribed (through the link in an earlier email)"


def audience_targets(tx: Transaction, audience: Audience | None, channel: Channel) -> Iterable[Target]:
    """Whom the channel reaches for the audience (None: the status page), each with its problem if any: those
    on its suppression list or unsubscribed through their link are marked ``suppressed``, never sent to."""
    targets = channel_spec(channel).targets(audience)
    if audience is not None and audience.unsubscribe is not None and channel is Channel.EMAIL:
        return _without_unsubscribed(targets, unsubscribed_addresses(tx, audience.key))
    return targets


def _without_unsubscribed(targets: Iterable[Target], unsubscribed: frozenset[str]) -> Iterator[Target]:
    """The targets, those who unsubscribed through their link recorded ``suppressed`` instead of sent."""
    for address, name, problem in targets:
        if problem is None and unsubscribed and address.strip().lower() in unsubscribed:
            problem = UNSUBSCRIBED_BY_LINK
        yield address, name, problem


def one_copy_order(audiences: Iterable[Audience]) -> list[Audience]:
    """The audiences in the order their copies win: higher ``priority`` first, then the message's order."""
    return sorted(audiences, key=lambda audience: -audience.priority)


def _statuspage_backwards(
    tx: Transaction, plan: Plan, cutover: CutoverRow, occurrence: OccurrenceRow, message: Message
) -> tuple[str, str] | None:
    """Keep the status page moving forward: ('cancelled', why) when this send must not go at all.

    When the message's status lags behind the furthest one reached, the furthest is sent instead
    (written into the occurrence's ``statuspage_override``, which the envelope reads).
    """
    if message.statuspage is None or occurrence.incident_id is not None or cutover.id is None:
        return None
    context: dict[str, Any] = dict(jsoncodec.loads(occurrence.context_json) or {})
    override: dict[str, Any] = dict(context.get("statuspage_override") or {})
    wanted = str(override.get("status", message.statuspage.status))
    reached: list[str] = []
    for sent_message, sent_context in statuspage_sent(tx, cutover.id):
        try:
            action = plan.message(sent_message).statuspage
        except KeyError:
            continue
        if action is not None:
            sent_override = (jsoncodec.loads(sent_context) or {}).get("statuspage_override") or {}
            reached.append(str(sent_override.get("status", action.status)))
    status = statuspage_status_to_send(reached, wanted)
    if status is None:
        return "cancelled", f"the status page is already past '{wanted}' ({', '.join(reached)}); it only moves forward"
    if status != wanted:
        override["status"] = status
        context["statuspage_override"] = override
        occurrence.context_json = jsoncodec.dumps(context)
        save(tx, occurrence)
        tx.commit()
    return None


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
