"""Frozen pydantic models of a communication plan: its messages and schedule, the escalation matrix, the plan.

The audiences are ``comms.plan.audiences``; the channel kinds, durations and offsets ``comms.plan.fields``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from comms.plan.addresses import EmailAddress
from comms.plan.audiences import Audience
from comms.plan.fields import Channel, Duration, Frozen, Offset

__all__ = [
    "BounceRatePolicy",
    "CutoverSpec",
    "EscalationLevel",
    "EscalationMatrix",
    "Message",
    "Plan",
    "Schedule",
    "SeverityPolicy",
    "StatuspageAction",
    "StatuspageSettings",
    "StatuspageStatus",
    "Trigger",
]


class Trigger(StrEnum):
    """What makes an occurrence due: the clock, or a cutover event."""

    TIME = "time"
    GO = "go"
    NO_GO = "no-go"
    STAGE = "stage"
    COMPLETE = "complete"
    ROLLBACK = "rollback"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    ADHOC = "adhoc"
    INCIDENT = "incident"
    ESCALATION = "escalation"

    @property
    def in_timeline(self) -> bool:
        """Whether occurrences of this trigger belong to a cutover's timeline."""
        return self not in (Trigger.ADHOC, Trigger.INCIDENT, Trigger.ESCALATION)


StatuspageStatus = Literal[
    "scheduled", "in_progress", "verifying", "completed", "investigating", "identified", "monitoring", "resolved"
]


class StatuspageAction(Frozen):
    """What a message does on the status page: the incident status it moves to."""

    status: StatuspageStatus
    """The incident status the message moves the status page to, e.g. `scheduled`, `in_progress`, `completed`."""
    impact: Literal["none", "maintenance", "minor", "major", "critical"] | None = None
    """The impact shown on the page, e.g. `maintenance`."""
    component_status: (
        Literal["operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"] | None
    ) = None
    """The status the covered components move to, e.g. `under_maintenance`."""

    @property
    def is_realtime(self) -> bool:
        """True for an unplanned incident (rollback, incident), false for the maintenance."""
        return self.status in ("investigating", "identified", "monitoring", "resolved")


class Message(Frozen):
    """One message of the plan: when (offset, recurrence or event), to whom, on which channels."""

    key: str
    """The message's key in `messages:` (lowercase-with-dashes); its templates live in `templates/<key>/`."""
    title: str
    """The message's title, quoted by templates as `message.title`, e.g. `Scheduled maintenance in 48 hours`."""
    audiences: tuple[str, ...] = Field(min_length=1)
    """Audience keys told by this message, e.g. `[end-users, executives]`."""
    channels: tuple[Channel, ...] = Field(min_length=1)
    """Channels it goes out on (each audience gets the ones it has), e.g. `[email, slack, statuspage]`."""
    max_lateness: Duration
    """How late it may still go out; past that it is recorded as missed, never sent stale, e.g. `1h`."""
    at: Offset | None = None
    """When, relative to T0 (one of `at`, `every` or `event`), e.g. `T-48h`."""
    every: Duration | None = None
    """Repeat at this interval between `from` and `until`, e.g. `2h`."""
    start: Offset | None = Field(default=None, alias="from")
    """First recurrence of an `every` message, relative to T0, e.g. `T+2h`."""
    until: Offset | Literal["window_end"] | None = None
    """Last moment of an `every` message: an offset or `window_end`, e.g. `window_end`."""
    event: Trigger | None = None
    """The cutover event that sends it: go, no-go, stage, complete, rollback, reschedule, cancel, incident, adhoc or escalation, e.g. `go`."""
    stages: tuple[int, ...] | None = None
    """For `event: stage`: the traffic stages (percent) it is sent at (default: every stage), e.g. `[10, 25, 50]`."""
    hold_until_go: bool = False
    """Wait for the go decision even when its time has come, e.g. `true`."""
    urgent: bool = False
    """Sent at once even in an audience's quiet hours, e.g. `true`."""
    calendar_invite: bool = False
    """Attach a calendar invite of the window to the email, e.g. `true`."""
    broadcast: bool = False
    """In Slack, a reply in the cutover's thread is also shown in the channel (reply_broadcast), e.g. `true`."""
    with_metrics: bool = False
    """Give templates the delivery metrics and KPIs as `metrics`, e.g. `true`."""
    statuspage: StatuspageAction | None = None
    """What it does on the status page (required with the statuspage channel), e.g. `{status: in_progress}`."""
    phase: Literal["before", "window", "after"] | None = None
    """The cutover phase the message speaks about; derived from its offset or event when not given, e.g. `window`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True)

    @model_validator(mode="after")
    def _one_trigger(self) -> Message:
        kinds = [self.at is not None, self.every is not None, self.event is not None]
        if sum(kinds) != 1:
            raise ValueError("a message needs exactly one of 'at' (offset), 'every' (recurrence) or 'event'")
        if self.every is not None:
            if self.start is None or self.until is None:
                raise ValueError("a recurring message ('every') needs 'from' and 'until'")
            if self.every <= timedelta(0):
                raise ValueError("'every' must be positive")
        elif self.start is not None or self.until is not None:
            raise ValueError("'from' and 'until' belong only to recurring messages ('every')")
        if self.stages is not None and self.event is not Trigger.STAGE:
            raise ValueError("'stages' belongs only to messages sent 'event: stage'")
        if self.event == Trigger.TIME:
            raise ValueError("'event: time' is not an event; use 'at'")
        if self.statuspage and Channel.STATUSPAGE not in self.channels:
            raise ValueError("'statuspage' action given but 'statuspage' is not among the channels")
        if Channel.STATUSPAGE in self.channels and not self.statuspage:
            raise ValueError("a message sent to the status page needs a 'statuspage: {status: ...}' action")
        return self


class StatuspageSettings(Frozen):
    """Status-page details of the cutover: the components the maintenance covers."""

    components: tuple[str, ...] = ()
    """Statuspage component ids the maintenance covers, e.g. `[8kbf7d35c070]`."""
    remind_prior: bool = True
    """Let Statuspage remind subscribers before the maintenance starts, e.g. `false`."""
    auto_in_progress: bool = False
    """Let Statuspage move the maintenance to in progress at T0 by itself, e.g. `true`."""
    auto_completed: bool = False
    """Let Statuspage complete the maintenance at the window's end by itself, e.g. `true`."""


class CutoverSpec(Frozen):
    """The cutover a plan is for: names, window, stages and the facts templates quote."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    """The cutover's name in the database (lowercase-with-dashes), e.g. `firestore-to-supabase`."""
    title: str
    """What templates call it (`cutover.title`), e.g. `Firestore to Supabase migration`."""
    window: Duration = timedelta(hours=12)
    """The maintenance window from T0 (`cutover.end` is T0 + window), e.g. `6h`."""
    downtime_target: Duration = timedelta(minutes=5)
    """The downtime promised, quoted by templates, e.g. `5m`."""
    traffic_stages: tuple[int, ...] = (100,)
    """Traffic switched in stages (percent, rising, ending at 100); the default switches it all at once, e.g. `[10, 25, 50, 100]`."""
    status_page_url: str
    """The public status page, linked by templates, e.g. `https://status.example.com`."""
    go_window_opens: Offset = timedelta(hours=-6)
    """The earliest instant (relative to T0) at which go may be given; it may be given until the window ends, e.g. `-6h`."""
    facts: dict[str, str] = Field(default_factory=dict)
    """Any wording templates quote as `cutover.facts.<name>`, e.g. `{support_email: support@example.com}`."""

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than 0 (e.g. 12h): a zero-length window has no messages")
        return value

    @field_validator("traffic_stages")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or list(value) != sorted(set(value)) or value[0] <= 0 or value[-1] != 100:
            raise ValueError("traffic_stages must rise strictly, start above 0 and end at 100")
        return value


class Schedule(Frozen):
    """The timeline file: the cutover, status-page settings and the messages."""

    cutover: CutoverSpec
    """The cutover: names, window, stages and facts."""
    statuspage: StatuspageSettings = StatuspageSettings()
    """Status-page settings of the maintenance, e.g. `{components: [8kbf7d35c070]}`."""
    messages: tuple[Message, ...]
    """Every message, by key, e.g. `{advance-notice: {title: ..., at: T-48h, ...}}`."""

    def never_firing(self) -> list[Message]:
        """Recurring messages whose 'from' is not before their 'until' (or the window's end): they never fire."""
        found = []
        for message in self.messages:
            if message.every is None or message.start is None:
                continue
            until = self.cutover.window if message.until == "window_end" else message.until
            if isinstance(until, timedelta) and message.start >= until:
                found.append(message)
        return found


class EscalationLevel(Frozen):
    """One rung of an escalation: whom to notify, and when after the incident opened."""

    after: Duration
    """How long after the incident opened (unacknowledged) this rung fires, e.g. `15m`."""
    notify: tuple[str, ...] = Field(min_length=1)
    """Audience keys told at this rung, e.g. `[engineering]`."""
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.SLACK)
    """Channels of the notice, e.g. `[slack]`."""
    emails: tuple[EmailAddress, ...] = ()
    """Extra addresses told directly, e.g. `[oncall@example.com]`."""
    slack: tuple[str, ...] = ()
    """Extra Slack channels told directly, e.g. `["#oncall"]`."""


class SeverityPolicy(Frozen):
    """What a severity means: its audiences, whether it opens a status-page incident, its levels."""

    description: str
    """What the severity means, e.g. `Customers cannot use the app`."""
    audiences: tuple[str, ...] = Field(min_length=1)
    """Audience keys told when an incident of this severity opens, e.g. `[executives, support]`."""
    channels: tuple[Channel, ...] = Field(min_length=1)
    """Channels of the incident notices, e.g. `[email, slack, statuspage]`."""
    statuspage_impact: Literal["none", "minor", "major", "critical"] | None = None
    """Open a status-page incident with this impact, e.g. `major`."""
    component_status: Literal["degraded_performance", "partial_outage", "major_outage", "under_maintenance"] | None = (
        None
    )
    """The status the covered components move to, e.g. `partial_outage`."""
    levels: tuple[EscalationLevel, ...] = Field(min_length=1)
    """The escalation rungs, earliest first, e.g. `[{after: 15m, notify: [engineering]}]`."""
    repeat_every: Duration | None = None
    """Repeat the last rung at this interval until acknowledged, e.g. `30m`."""


class BounceRatePolicy(Frozen):
    """When the provider's bounces and drops for one audience are too many: tell the delivery_failures contacts."""

    threshold: float = Field(gt=0, le=1)
    """The share of an audience's reported deliveries bounced or dropped above which one notice goes out, e.g. `0.05`."""
    min_reported: int = Field(default=20, ge=1)
    """How many deliveries the provider must have reported on before the rate means anything, e.g. `20`."""


class EscalationMatrix(Frozen):
    """Per severity, the escalation policy; plus the contacts told of failed deliveries (and of bounce rates)."""

    severities: dict[Literal["sev1", "sev2", "sev3"], SeverityPolicy]
    """The policy of each severity, e.g. `{sev1: {...}, sev2: {...}}`."""
    delivery_failures: EscalationLevel | None = None
    """Whom to tell when a delivery dies or a message is missed, e.g. `{after: 0m, notify: [engineering]}`."""
    bounce_rate: BounceRatePolicy | None = None
    """Tell the delivery_failures contacts when an audience's bounces pass a share, e.g. `{threshold: 0.05}`."""


class Plan(Frozen):
    """A whole loaded plan: audiences by key, the schedule, the escalation matrix and the root folder."""

    root: Path
    audiences: dict[str, Audience]
    schedule: Schedule
    escalation: EscalationMatrix | None = None

    @property
    def cutover(self) -> CutoverSpec:
        """The cutover described by the schedule."""
        return self.schedule.cutover

    def message(self, key: str) -> Message:
        """The message ``key`` or KeyError."""
        for message in self.schedule.messages:
            if message.key == key:
                return message
        raise KeyError(key)
