"""Settings from the environment (``COMMS_*``) and an optional ``.env`` file. Secrets are SecretStr.

A value comms cannot use (a count that is not a number, a provider host that is not an http(s) URL)
fails when the settings are read, before anything is stored; :func:`settings_error` turns pydantic's
ValidationError into a SettingsError naming the environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from comms.core.unsubscribe import UnsubscribeLinks
from comms.errors import SettingsError

__all__ = ["ENV_PREFIX", "Settings", "default_cache_dir", "settings_error"]

ENV_PREFIX = "COMMS_"


def default_cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/comms``, else ``~/.cache/comms``; None when there is no home directory."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "comms"
    try:
        return Path.home() / ".cache" / "comms"
    except RuntimeError:
        return None


class Settings(BaseSettings):
    """Everything comms reads from its environment; secrets never appear in a repr or a log."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    database_url: str = "sqlite:///comms.db"
    outbox_dir: Path = Path("outbox")
    plan_dir: Path = Path(".")
    cache_dir: Path | None = Field(default_factory=default_cache_dir)
    """Compiled templates kept between runs (see ``comms.template_cache``); empty means no cache."""

    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    email_from: str = "cutover@example.com"
    email_from_name: str = "Cutover communications"
    email_reply_to: str | None = None

    slack_token: SecretStr | None = None
    slack_base_url: str = "https://slack.com/api/"

    statuspage_api_key: SecretStr | None = None
    statuspage_page_id: str | None = None
    statuspage_base_url: str = "https://api.statuspage.io/v1"

    webhook_secret: SecretStr | None = None

    console_token: SecretStr | None = None
    """The console's login secret (``comms serve``); without it the console binds 127.0.0.1 only."""
    ack_secret: SecretStr | None = None
    """Signs the ack links in escalation emails; without it the emails say how to ack from the CLI."""
    slack_signing_secret: SecretStr | None = None
    sendgrid_webhook_public_key: SecretStr | None = None
    """SendGrid's Event Webhook verification key, base64 exactly as SendGrid shows it."""
    public_url: str | None = None
    """The console's public base URL, the start of links in messages (https://comms.example.com); end users'
    unsubscribe links point under it."""
    ack_link_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    """How long an ack link stays valid after its email is sent."""
    unsubscribe_secret: SecretStr | None = None
    """Signs unsubscribe links; without it (or without a public URL) the link is a mailto."""

    max_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=5.0, ge=0)
    retry_max_seconds: float = Field(default=600.0, ge=0)
    max_in_flight: int = Field(default=8, ge=1, le=64)
    """Requests in flight at once (email batches; Slack and the status page always keep one)."""
    writer_process: bool = True
    """Write a big message's rows in a child process once the sender has written ``writer_process_after``."""
    writer_process_after: int = Field(default=50_000, ge=1)
    """Rows of a message the sender writes itself (a child process starts in about half a second)."""
    lease_seconds: float = Field(default=10.0, ge=2, le=300)
    """How long the sender's lease lasts without a heartbeat; a standby takes over after it."""

    @field_validator("sendgrid_host", "slack_base_url", "statuspage_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, such as https://api.example.com")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, such as https://comms.example.com")
        return value.rstrip("/")

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_means_no_cache(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def unsubscribe_links(self) -> UnsubscribeLinks:
        """Unsubscribe links: signed one-click URLs under COMMS_PUBLIC_URL, else a mailto to the reply-to."""
        secret = self.unsubscribe_secret.get_secret_value().encode() if self.unsubscribe_secret else None
        return UnsubscribeLinks(self.public_url or None, secret or None, self.email_reply_to or self.email_from)

    @property
    def sendgrid_configured(self) -> bool:
        """Whether SendGrid credentials are set (else email goes to the outbox)."""
        return self.sendgrid_api_key is not None and bool(self.sendgrid_api_key.get_secret_value())

    @property
    def slack_configured(self) -> bool:
        """Whether a Slack token is set (else Slack goes to the outbox)."""
        return self.slack_token is not None and bool(self.slack_token.get_secret_value())

    @property
    def statuspage_configured(self) -> bool:
        """Whether Statuspage key and page id are set (else the status page goes to the outbox)."""
        key = self.statuspage_api_key
        return key is not None and bool(key.get_secret_value()) and bool(self.statuspage_page_id)

    @property
    def webhook_configured(self) -> bool:
        """Whether the webhook signing secret is set (else webhooks go to the outbox)."""
        return self.webhook_secret is not None and bool(self.webhook_secret.get_secret_value())


def settings_error(exc: BaseException) -> SettingsError | None:
    """The SettingsError a failed read of Settings means, one line naming each bad variable; None for other errors."""
    if not isinstance(exc, ValidationError) or exc.title != Settings.__name__:
        return None
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = ENV_PREFIX + field.upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        secret = field in Settings.model_fields and "SecretStr" in str(Settings.model_fields[field].annotation)
        shown = "" if secret or "input" not in error else f"={error['input']!r}"
        problems.append(f"{variable}{shown}: {message}")
    return SettingsError("invalid setting " + "; ".join(problems))
