"""Settings from the environment (``COMMS_*``) and an optional ``.env`` file. Secrets are SecretStr."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    model_config = SettingsConfigDict(env_prefix="COMMS_", env_file=".env", extra="ignore", frozen=True)

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

    max_attempts: int = 6
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_means_no_cache(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

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
