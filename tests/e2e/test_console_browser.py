"""The console in a real headless Chromium: log in, watch a send progress, acknowledge from the email link."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comms.services.escalations import notify_due_levels
from comms.services.incidents import list_incidents, open_incident
from comms.web.views import cutover_names
from tests.integration.test_console_acks import escalation_links
from tests.support.console_browser import browser_missing, chromium
from tests.support.console_server import CONSOLE_TOKEN, ConsoleServer, start_console

pytestmark = pytest.mark.slow
WAIT_S = 20


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleServer]:
    if (reason := browser_missing()) is not None:
        pytest.skip(reason)
    server = start_console(tmp_path)
    yield server
    server.stop()


def _screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("COMMS_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_follow_the_day_and_acknowledge_from_the_email(console: ConsoleServer, tmp_path: Path) -> None:
    """Log in; the page counts sends live as they happen; the email's link acknowledges and escalation stops."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    services = console.services
    shots = _screenshot_dir(tmp_path)
    name = cutover_names(services.engine)[0]
    with chromium() as driver_object:
        driver: Any = driver_object
        # the live page replaces its counters as sends happen: an element read mid-refresh is read again
        wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
        driver.get(f"{console.url}/cutovers/{name}")
        wait.until(seen.presence_of_element_located((By.ID, "token"))).send_keys(CONSOLE_TOKEN)
        driver.find_element(By.ID, "login-button").click()
        wait.until(seen.presence_of_element_located((By.ID, "timeline")))
        assert wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-count=sent]").text == "0")
        viewer_zone = driver.find_element(By.CSS_SELECTOR, "[data-viewer-zone]").text
        assert viewer_zone and viewer_zone != "your browser's zone"

        outcome = open_incident(
            services.engine,
            services.dispatcher.plans,
            severity="sev1",
            summary="Checkout answers 502",
            now=services.clock(),
        )
        services.dispatcher.dispatch_now(outcome.occurrences)
        wait.until(lambda d: int(d.find_element(By.CSS_SELECTOR, "[data-count=sent]").text) > 0)
        assert "Checkout" not in driver.current_url
        driver.save_screenshot(str(shots / "console-cutover.png"))

        link = escalation_links(console.outbox)["oncall@example.com"]
        driver.get(link)
        wait.until(seen.element_to_be_clickable((By.ID, "acknowledge"))).click()
        message = wait.until(seen.presence_of_element_located((By.ID, "outcome"))).text
        assert "escalation has stopped" in message
        driver.save_screenshot(str(shots / "console-ack.png"))

        driver.get(f"{console.url}/incidents")
        acked = wait.until(
            seen.presence_of_element_located((By.CSS_SELECTOR, f"#incident-{outcome.incident_id} .acked-by"))
        )
        assert acked.text == "oncall@example.com (email link)"
        driver.save_screenshot(str(shots / "console-incidents.png"))

    view = next(
        v
        for v in list_incidents(services.engine, services.dispatcher.plans, now=services.clock())
        if v.id == outcome.incident_id
    )
    assert view.state == "acknowledged" and view.next_escalation_at is None
    console.clock.advance(hours=2)
    assert notify_due_levels(services.engine, services.dispatcher.plans, now=services.clock()) == []
