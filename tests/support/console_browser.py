"""A real headless Chromium (the system package) driven by Selenium through /usr/bin/chromedriver.

Never downloads a browser: the Debian ``chromium`` and ``chromium-driver`` packages are used, with
a fresh profile per session and every background service (updates, sync, networking) turned off.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


def browser_missing() -> str | None:
    """Why no browser test can run here (None when Chromium and its driver are installed)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"{' and '.join(missing)} missing: apt-get install -y chromium chromium-driver" if missing else None


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium WebDriver with a fresh --user-data-dir, quit and cleaned up afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="comms-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
