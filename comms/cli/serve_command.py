"""``comms serve``: the cutover console on the worker's store, served by uvicorn."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

import typer

from comms.cli.app import app, console, handles_errors
from comms.errors import InputError

__all__ = ["LOOPBACK", "serve"]

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command("serve")
@handles_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8080,
) -> None:
    """Serve the cutover console: live cutover and incident pages, ack links, Slack and SendGrid webhooks.

    Log in with COMMS_CONSOLE_TOKEN. Without it the console listens on 127.0.0.1 only and asks
    for a one-time token printed here.
    """
    import uvicorn

    from comms.bootstrap import bootstrap
    from comms.settings import Settings
    from comms.web import create_app

    settings = Settings()
    token = settings.console_token.get_secret_value() if settings.console_token else ""
    if not token:
        if host not in LOOPBACK:
            raise InputError(
                f"--host {host}: without COMMS_CONSOLE_TOKEN the console listens on 127.0.0.1 only; "
                "set COMMS_CONSOLE_TOKEN to serve it on another address"
            )
        token = secrets.token_urlsafe(24)
        console.print(
            f"No COMMS_CONSOLE_TOKEN: log in with this one-time token: {token}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    services = bootstrap(settings)
    web = create_app(
        services,
        console_token=token,
        ack_secret=settings.ack_secret.get_secret_value() if settings.ack_secret else None,
        slack_signing_secret=(
            settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        ),
        sendgrid_public_key=(
            settings.sendgrid_webhook_public_key.get_secret_value() if settings.sendgrid_webhook_public_key else None
        ),
        secure_cookies=(settings.public_url or "").startswith("https://"),
    )
    console.print(f"comms console on http://{host}:{port}/ (Ctrl-C stops it)", markup=False, highlight=False)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False, server_header=False)
