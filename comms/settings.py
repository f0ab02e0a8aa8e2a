"""Settings from the environment (``COMMS_*``) and an optional ``.env`` file. Secrets are SecretStr."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything comms reads from its environment; secrets never appear in a repr or a log."""

    model_config = SettingsConfigDict(env_prefix="COMMS_", env_file=".env", extra="ignore", frozen=True)

    database_url: str = "sqlite:///comms.db"
    outbox_dir: Path = Path("outbox")
    plan_dir: Path = Path(".")

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

    max_attempts: int = 6
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 600.0

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
