"""Who hears a plan's messages: an audience, its channels and targets (email, Slack, webhook), its time zone,
language, quiet hours and unsubscribe settings (``audiences/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from comms.core.locale_format import check_locale
from comms.core.times import load_zone
from comms.plan.addresses import EmailAddress
from comms.plan.fields import Channel, Frozen, QuietHoursText

__all__ = ["Audience", "AudienceChannels", "EmailTargets", "SlackTargets", "Unsubscribe", "WebhookTargets"]


class EmailTargets(Frozen):
    """Email recipients: an inline list, a CSV file (column ``email``, optional ``name``), or both."""

    recipients: tuple[EmailAddress, ...] = ()
    """Addresses written in the plan, e.g. `[cto@example.com, ceo@example.com]`."""
    recipients_csv: str | None = None
    """A CSV of recipients beside the audience file (column `email`, optional `name`; streamed, any size), e.g. `end-users.csv`."""
    fallback: Channel | None = None
    """Where a message goes once when its email to this audience ends dead (see `comms.services.fallback`), e.g. `slack`."""

    @model_validator(mode="after")
    def _some_recipients(self) -> EmailTargets:
        if not self.recipients and not self.recipients_csv:
            raise ValueError("email needs recipients or recipients_csv")
        return self


class SlackTargets(Frozen):
    """Slack channels (``#name`` or a channel id) an audience is told in."""

    channels: tuple[Annotated[str, Field(min_length=2)], ...] = Field(min_length=1)
    """Slack channels by name or id, e.g. `["#exec-updates"]` or `[C0123ABC]`."""
    fallback: Channel | None = None
    """Where a message goes once when its Slack post to this audience ends dead, e.g. `email`."""

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not (name.startswith("#") or name[:1] in "CGD" and name[1:].isalnum()):
                raise ValueError(f"slack channel {name!r} must be '#name' or a channel id like C0123ABC")
        return value


class WebhookTargets(Frozen):
    """Receivers of signed JSON POSTs (``http`` or ``https`` URLs), each one delivery target."""

    urls: tuple[str, ...] = Field(min_length=1)
    """Receiver URLs of signed JSON POSTs, e.g. `["https://hooks.example.com/cutover"]`."""
    fallback: Channel | None = None
    """Where a message goes once when its webhook delivery to this audience ends dead, e.g. `email`."""

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


class AudienceChannels(Frozen):
    """Which channels serve an audience; each field is named after its Channel value."""

    email: EmailTargets | None = None
    """Email recipients of the audience, e.g. `{recipients: [a@example.com]}`."""
    slack: SlackTargets | None = None
    """Slack channels the audience is told in, e.g. `{channels: ["#cutover"]}`."""
    statuspage: bool = False
    """Whether the audience follows the public status page, e.g. `true`."""
    webhook: WebhookTargets | None = None
    """Webhook receivers of the audience, e.g. `{urls: ["https://hooks.example.com/x"]}`."""

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
                raise ValueError(
                    f"{channel.value}.fallback is {fallback.value}, but the audience has no {fallback.value}"
                )
        return self


class Unsubscribe(Frozen):
    """End users may unsubscribe: a SendGrid suppression group (ASM) and a list of addresses never sent to.

    Audiences without it (staff, told operational messages) carry no unsubscribe link.
    """

    group_id: int | None = Field(default=None, ge=1)
    """The SendGrid unsubscribe group (ASM) the audience's emails are sent in, e.g. `4242`."""
    suppression_list: str | None = None
    """A CSV (column `email`) of unsubscribed addresses never sent to, beside the audience file, e.g. `end-users-unsubscribed.csv`."""


class Audience(Frozen):
    """One stakeholder group: who they are, their time zone and how they are reached."""

    key: str
    """The audience's key: its file name without `.yaml` (not written in the file)."""
    title: str
    """How templates name the audience, e.g. `Executives`."""
    description: str
    """Who they are and what they need to hear, e.g. `The leadership team.`"""
    timezone: str
    """IANA time zone the audience's times are written in, e.g. `Europe/London`."""
    channels: AudienceChannels
    """How the audience is reached: any of email, slack, statuspage, webhook."""
    priority: int = 0
    """Whose copy wins when a person is in several audiences of one message: higher first, then the message's order, e.g. `10`."""
    unsubscribe: Unsubscribe | None = None
    """End users may unsubscribe (staff audiences leave it out), e.g. `{group_id: 4242, suppression_list: end-users-unsubscribed.csv}`."""
    locale: str | None = None
    """The readers' language: its template variants and date formats (English without one), e.g. `de`."""
    locales: tuple[str, ...] = ()
    """Other languages named in the recipients CSV's `locale` column, one render each, e.g. `[de, fr]`."""
    quiet_hours: QuietHoursText | None = None
    """Local hours in which non-urgent messages wait (see `comms.core.quiet_hours`), e.g. `"22:00-07:00"`."""
    source: Path = Field(exclude=True)
    """The audience file (not written in the file)."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @model_validator(mode="after")
    def _reaches_someone(self) -> Audience:
        if not self.channels.kinds():
            raise ValueError(
                "the audience reaches no one: give it at least one channel (email, slack, statuspage, webhook)"
            )
        return self

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
