"""Frozen pydantic models of a communication plan (audiences, schedule, escalation matrix)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from comms.core.locale_format import check_locale
from comms.core.quiet_hours import QuietHours, parse_quiet_hours
from comms.core.times import load_zone, parse_duration, parse_offset
from comms.plan.addresses import EmailAddress


class Channel(StrEnum):
    """The delivery channels a message can go out on."""

    EMAIL = "email"
    SLACK = "slack"
    STATUSPAGE = "statuspage"
    WEBHOOK = "webhook"


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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


def _offset(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_offset(str(value))


def _quiet_hours(value: object) -> object:
    return parse_quiet_hours(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
"""A length of time written as ``2h``, ``30m``, ``1w``."""

Offset = Annotated[timedelta, BeforeValidator(_offset)]
"""An instant relative to T0 written as ``T-48h``, ``T0``, ``T+1w``."""


class EmailTargets(_Frozen):
    """Email recipients: an inline list, a CSV file (column ``email``, optional ``name``), or both."""

    recipients: tuple[EmailAddress, ...] = ()
    recipients_csv: str | None = None
    fallback: Channel | None = None
    """Where a message goes once when its email to this audience ends dead (see ``comms.services.fallback``)."""

    @model_validator(mode="after")
    def _some_recipients(self) -> EmailTargets:
        if not self.recipients and not self.recipients_csv:
            raise ValueError("email needs recipients or recipients_csv")
        return self


class SlackTargets(_Frozen):
    """Slack channels (``#name`` or a channel id) an audience is told in."""

    channels: tuple[Annotated[str, Field(min_length=2)], ...] = Field(min_length=1)
    fallback: Channel | None = None
    """Where a message goes once when its Slack post to this audience ends dead (``fallback: email``)."""

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not (name.startswith("#") or name[:1] in "CGD" and name[1:].isalnum()):
                raise ValueError(f"slack channel {name!r} must be '#name' or a channel id like C0123ABC")
        return value


class WebhookTargets(_Frozen):
    """Receivers of signed JSON POSTs (``http`` or ``https`` URLs), each one delivery target."""

    urls: tuple[str, ...] = Field(min_length=1)
    fallback: Channel | None = None
    """Where a message goes once when its webhook delivery to this audience ends dead."""

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook url {url!r} must be an http:// or https:// URL with a host")
            if parts.username or parts.password:
                raise ValueError(f"webhook url {url!r} must not carry credentials: the signature authenticates")
        if len({url.lower() for url in value}) != len(value):  # delivery keys fold case
            raise ValueError("webhook urls must be unique (ignoring case)")
        return value


class AudienceChannels(_Frozen):
    """Which channels serve an audience; each field is named after its Channel value."""

    email: EmailTargets | None = None
    slack: SlackTargets | None = None
    statuspage: bool = False
    webhook: WebhookTargets | None = None

    def kinds(self) -> frozenset[Channel]:
        """The channels this audience can be reached on (the fields that are set)."""
        return frozenset(Channel(name) for name in type(self).model_fields if getattr(self, name))

    def fallback_for(self, channel: Channel) -> Channel | None:
        """The channel a dead delivery on ``channel`` falls back to, if the audience names one."""
        targets = getattr(self, channel.value, None)
        return getattr(targets, "fallback", None)

    @model_validator(mode="after")
    def _fallbacks_reach_the_audience(self) -> AudienceChannels:
        for channel in self.kinds():
            fallback = self.fallback_for(channel)
            if fallback is None:
                continue
            if fallback is channel or fallback is Channel.STATUSPAGE:
                raise ValueError(f"{channel.value}.fallback must be another channel of the audience, not {fallback}")
            if fallback not in self.kinds():
                raise ValueError(f"{channel.value}.fallback is {fallback.value}, but the audience has no {fallback.value}")
        return self


class Unsubscribe(_Frozen):
    """End users may unsubscribe: a SendGrid suppression group (ASM) and a list of addresses never sent to.

    Audiences without it (staff, told operational messages) carry no unsubscribe link.
    """

    group_id: int | None = Field(default=None, ge=1)
    suppression_list: str | None = None
    """A CSV (column ``email``) of unsubscribed addresses, relative to the audience file."""


class Audience(_Frozen):
    """One stakeholder group: who they are, their time zone and how they are reached."""

    key: str
    title: str
    description: str
    timezone: str
    channels: AudienceChannels
    unsubscribe: Unsubscribe | None = None
    locale: str | None = None
    """The readers' language (``de``, ``fr``): its template variants and date formats; English without one."""
    locales: tuple[str, ...] = ()
    """Other languages named in the recipients CSV's ``locale`` column: one render each (see ``reader_groups``)."""
    quiet_hours: Annotated[QuietHours, BeforeValidator(_quiet_hours)] | None = None
    """Local hours (``"22:00-07:00"``) in which non-urgent messages wait (see ``comms.core.quiet_hours``)."""
    source: Path = Field(exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str | None) -> str | None:
        return check_locale(value) if value is not None else None

    @field_validator("locales")
    @classmethod
    def _known_locales(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_locale(v) for v in value)

    @model_validator(mode="after")
    def _locales_need_a_csv(self) -> Audience:
        if self.locales and not (self.channels.email and self.channels.email.recipients_csv):
            raise ValueError("'locales' names languages of the recipients CSV's 'locale' column: give a recipients_csv")
        if (self.locale or "en") in self.locales:
            raise ValueError(f"'locales' lists the audience's own locale {self.locale or 'en'}")
        return self

    def reader_groups(self) -> list[Audience]:
        """The audience as one view per language it renders in: itself, then one copy per entry of ``locales``.

        The copies select the CSV rows of their locale (``email_targets``); rows of another or no locale go
        with the audience itself.
        """
        return [self, *(self.model_copy(update={"locale": locale}) for locale in self.locales)]

    def reads_row(self, row_locale: str | None) -> bool:
        """Whether a CSV row of ``row_locale`` belongs to this view (see ``reader_groups``)."""
        if self.locale in self.locales:
            return row_locale == self.locale
        return row_locale not in self.locales

    def csv_path(self) -> Path | None:
        """The recipients CSV resolved against the audience file's folder, if any."""
        if self.channels.email and self.channels.email.recipients_csv:
            return (self.source.parent / self.channels.email.recipients_csv).resolve()
        return None

    def suppression_path(self) -> Path | None:
        """The suppression list resolved against the audience file's folder, if any."""
        if self.unsubscribe and self.unsubscribe.suppression_list:
            return (self.source.parent / self.unsubscribe.suppression_list).resolve()
        return None


StatuspageStatus = Literal[
    "scheduled", "in_progress", "verifying", "completed", "investigating", "identified", "monitoring", "resolved"
]


class StatuspageAction(_Frozen):
    """What a message does on the status page: the incident status it moves to."""

    status: StatuspageStatus
    impact: Literal["none", "maintenance", "minor", "major", "critical"] | None = None
    component_status: (
        Literal["operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"] | None
    ) = None

    @property
    def is_realtime(self) -> bool:
        """True for an unplanned incident (rollback, incident), false for the maintenance."""
        return self.status in ("investigating", "identified", "monitoring", "resolved")


class Message(_Frozen):
    """One message of the plan: when (offset, recurrence or event), to whom, on which channels."""

    key: str
    title: str
    audiences: tuple[str, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    max_lateness: Duration
    at: Offset | None = None
    every: Duration | None = None
    start: Offset | None = Field(default=None, alias="from")
    until: Offset | Literal["window_end"] | None = None
    event: Trigger | None = None
    stages: tuple[int, ...] | None = None
    hold_until_go: bool = False
    urgent: bool = False
    """Sent at once even in an audience's quiet hours."""
    calendar_invite: bool = False
    broadcast: bool = False
    with_metrics: bool = False
    statuspage: StatuspageAction | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

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


class StatuspageSettings(_Frozen):
    """Status-page details of the cutover: the components the maintenance covers."""

    components: tuple[str, ...] = ()
    remind_prior: bool = True
    auto_in_progress: bool = False
    auto_completed: bool = False


class CutoverSpec(_Frozen):
    """The cutover a plan is for: names, window, stages and the facts templates quote."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    window: Duration = timedelta(hours=12)
    downtime_target: Duration = timedelta(minutes=5)
    traffic_stages: tuple[int, ...] = (10, 25, 50, 75, 100)
    status_page_url: str
    facts: dict[str, str] = Field(default_factory=dict)

    @field_validator("traffic_stages")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or list(value) != sorted(set(value)) or value[0] <= 0 or value[-1] != 100:
            raise ValueError("traffic_stages must rise strictly, start above 0 and end at 100")
        return value


class Schedule(_Frozen):
    """The timeline file: the cutover, status-page settings and the messages."""

    cutover: CutoverSpec
    statuspage: StatuspageSettings = StatuspageSettings()
    messages: tuple[Message, ...]


class EscalationLevel(_Frozen):
    """One rung of an escalation: whom to notify, and when after the incident opened."""

    after: Duration
    notify: tuple[str, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.SLACK)
    emails: tuple[EmailAddress, ...] = ()
    slack: tuple[str, ...] = ()


class SeverityPolicy(_Frozen):
    """What a severity means: its audiences, whether it opens a status-page incident, its levels."""

    description: str
    audiences: tuple[str, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    statuspage_impact: Literal["none", "minor", "major", "critical"] | None = None
    component_status: Literal["degraded_performance", "partial_outage", "major_outage", "under_maintenance"] | None = (
        None
    )
    levels: tuple[EscalationLevel, ...] = Field(min_length=1)
    repeat_every: Duration | None = None


class EscalationMatrix(_Frozen):
    """Per severity, the escalation policy; plus the contacts told of failed deliveries."""

    severities: dict[Literal["sev1", "sev2", "sev3"], SeverityPolicy]
    delivery_failures: EscalationLevel | None = None


class Plan(_Frozen):
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
