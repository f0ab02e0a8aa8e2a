"""The console in a real uvicorn server on 127.0.0.1 (a free port, in a thread), on a fresh store.

The socket is bound before the server thread starts, so a request made right away waits in the
listen backlog instead of racing the start-up; ``stop()`` asks uvicorn to exit and joins the thread.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from comms.bootstrap import Services, bootstrap
from comms.plan.loader import load_plan
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from comms.web import create_app
from tests.support.clock import FakeClock

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_TOKEN = "console-token-for-tests"
ACK_SECRET = "ack-secret-for-tests"
SLACK_SIGNING_SECRET = "slack-signing-secret-for-tests"
UNSUBSCRIBE_SECRET = "unsubscribe-secret-for-tests"


@dataclass
class ConsoleServer:
    """A running console: its base URL, the services behind it and the clock they read."""

    url: str
    services: Services
    clock: FakeClock
    outbox: Path
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop uvicorn and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)


def start_console(
    tmp_path: Path,
    *,
    now: datetime | None = None,
    t0: datetime | None = None,
    sendgrid_public_key: str | None = None,
    slack_api_url: str | None = None,
    slack_token: str | None = None,
    plan_root: Path = REPO_ROOT,
    database_url: str | None = None,
) -> ConsoleServer:
    """Schedule the default plan's cutover (T0 a day after ``now``) and serve the console on it.

    Channels without credentials write to the outbox; ``slack_api_url`` and ``slack_token`` send Slack
    to a loopback fake instead.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    now = now or datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    settings = Settings(
        database_url=database_url or f"sqlite:///{tmp_path}/comms.db",
        outbox_dir=tmp_path / "outbox",
        sendgrid_api_key=None,
        slack_token=slack_token,
        slack_base_url=slack_api_url or "https://slack.com/api/",
        statuspage_api_key=None,
        webhook_secret=None,
        console_token=CONSOLE_TOKEN,
        ack_secret=ACK_SECRET,
        slack_signing_secret=SLACK_SIGNING_SECRET,
        sendgrid_webhook_public_key=sendgrid_public_key,
        public_url=url,
        unsubscribe_secret=UNSUBSCRIBE_SECRET,
    )
    services = bootstrap(settings, clock=clock, sleep=clock.sleep)
    plan = load_plan(plan_root, check_templates=False)
    schedule_cutover(services.engine, plan, start=t0 or now + timedelta(days=1), now=now, accept_missed=True)
    app = create_app(
        services,
        console_token=CONSOLE_TOKEN,
        ack_secret=ACK_SECRET,
        slack_signing_secret=SLACK_SIGNING_SECRET,
        sendgrid_public_key=sendgrid_public_key,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True, name="console")
    thread.start()
    return ConsoleServer(url, services, clock, tmp_path / "outbox", server, thread)
