"""A real headless Chromium for browser tests (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium).

Shared by the gallery test and the web console's tests. ``chromium_driver(tmp_path)`` yields a driver
with a fresh profile under ``tmp_path``, offline flags and a fixed window size; the test is skipped with
the reason when ``/usr/bin/chromium`` or its driver (or the ``selenium`` package) is missing. ``.ci/run``
installs them, so CI never skips. Screenshots go to ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
"""Where browser tests save screenshots (tests/artifacts/, ignored by git)."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def skip_without_chromium() -> None:
    """Skip the calling test, saying what is missing, unless Chromium, its driver and selenium are there."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (.ci/run does)")
    if not (CHROMEDRIVER.exists() or shutil.which("chromedriver")):
        pytest.skip(f"{CHROMEDRIVER} is missing: apt-get install -y chromium-driver (.ci/run does)")
    pytest.importorskip("selenium", reason="the selenium package is missing: pip install -e '.[dev]'")


@contextmanager
def chromium_driver(profile_root: Path, *, width: int = 1280, height: int = 1600) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh ``--user-data-dir`` under ``profile_root``; quit on exit."""
    skip_without_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = profile_root / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver_path = str(CHROMEDRIVER) if CHROMEDRIVER.exists() else shutil.which("chromedriver")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_and_wait(driver: WebDriver, url: str, selector: str, count: int, *, timeout_s: float = 20.0) -> None:
    """Open ``url`` and wait until the page is loaded and ``count`` elements matching ``selector`` are shown.

    A big static page (the gallery index is ~330 KB with a hundred iframes) can still be parsing or laying
    out when ``get`` returns on a loaded machine (CI once saw 3 of its 21 groups); a test that counted
    then would count a part. "Shown" is what the browser lays out (a box on the page), as a reader sees it.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    shown = "return document.readyState === 'complete' ? Array.from(document.querySelectorAll(arguments[0]))"
    shown += ".filter(e => e.getClientRects().length > 0).length : -1"
    driver.get(url)
    WebDriverWait(driver, timeout_s).until(
        lambda d: d.execute_script(shown, selector) == count,
        f"{url} never showed {count} of {selector!r} within {timeout_s:.0f} s",
    )


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """Save a PNG of the current page as ``tests/artifacts/<name>.png``, print and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
