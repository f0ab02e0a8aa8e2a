"""The preview gallery in a real headless Chromium: timeline order, Slack drawn as Slack, status page, filters.

Screenshots of the index and of one Slack page are saved under tests/artifacts/ (see tests/support/browser.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import chromium_driver, open_and_wait, save_screenshot, skip_without_chromium

from comms.plan.loader import sent_combinations
from comms.plan.models import Plan
from comms.reports.gallery_order import gallery_groups
from comms.reports.preview import write_gallery


@pytest.fixture(scope="module")
def gallery(default_plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default plan's gallery, written once for these tests."""
    skip_without_chromium()
    out = tmp_path_factory.mktemp("gallery")
    write_gallery(default_plan, out)
    return out


def _visible(driver, selector: str) -> list:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return [element for element in driver.find_elements(By.CSS_SELECTOR, selector) if element.is_displayed()]


def test_index_groups_messages_in_timeline_order_and_draws_slack(
    gallery: Path, default_plan: Plan, tmp_path: Path
) -> None:
    """The index shows one group per message in timeline order; Slack cards have header, sections and context."""
    with chromium_driver(tmp_path) as driver:
        expected = [key for key, *_ in gallery_groups(default_plan)]
        open_and_wait(driver, (gallery / "index.html").as_uri(), "section.group > h2", len(expected))
        headings = [element.text for element in _visible(driver, "section.group > h2")]
        assert headings == expected
        first_slack = _visible(driver, ".slack")[0]
        assert first_slack.find_element("css selector", ".sk-header").text == "Scheduled maintenance: advance notice"
        assert first_slack.find_elements("css selector", ".sk-section")
        assert "T0" in first_slack.find_element("css selector", ".sk-context").text
        body = driver.find_element("tag name", "body").text
        assert "&gt;" not in body and "&amp;" not in body and '"type": "section"' not in body
        save_screenshot(driver, "gallery-index")
        driver.find_element("css selector", "label[for='channel-2']").click()  # slack only
        assert all("· slack ·" in card.text for card in _visible(driver, ".card .label"))
        save_screenshot(driver, "gallery-index-slack")


def test_slack_page_looks_like_slack(gallery: Path, tmp_path: Path) -> None:
    """A Slack page draws bold text, emoji and mentions as Slack does; the raw blocks stay folded away."""
    with chromium_driver(tmp_path, width=900, height=900) as driver:
        driver.get((gallery / "success--support--slack.html").as_uri())
        message = _visible(driver, ".slack")[0]
        assert message.find_element("css selector", ".sk-header").text == "Migration complete"
        section = message.find_elements("css selector", ".sk-section")[0]
        assert section.text.startswith("🎉 Complete.")
        assert section.find_element("css selector", "b").text == "Complete."
        assert not _visible(driver, "details.raw pre")  # the JSON is there, folded
        save_screenshot(driver, "gallery-slack-success-support")


def test_status_page_update_shows_title_status_and_body(gallery: Path, tmp_path: Path) -> None:
    """A status-page page shows the incident title, its status label and the body as the page would."""
    with chromium_driver(tmp_path, width=900, height=700) as driver:
        driver.get((gallery / "starting--status-page--statuspage.html").as_uri())
        card = _visible(driver, ".page")[0]
        assert card.find_element("css selector", ".status").text.lower() == "in progress"
        assert card.find_element("css selector", "h3").text and card.find_element("css selector", ".body").text


def test_channel_and_audience_filters_hide_what_does_not_match(
    gallery: Path, default_plan: Plan, tmp_path: Path
) -> None:
    """Choosing 'statuspage' hides every other card and the messages never sent there; adding an audience narrows."""
    with chromium_driver(tmp_path) as driver:
        open_and_wait(driver, (gallery / "index.html").as_uri(), ".card", len(sent_combinations(default_plan)))
        everything = len(_visible(driver, ".card"))
        driver.find_element(
            "css selector", "label[for='channel-3']"
        ).click()  # channels sorted: email, slack, statuspage
        cards = _visible(driver, ".card")
        assert 0 < len(cards) < everything
        assert all("· statuspage ·" in card.find_element("css selector", ".label").text for card in cards)
        groups = [element.text for element in _visible(driver, "section.group > h2")]
        assert "reminder" not in groups and "advance-notice" in groups
        labels = {e.text: e.get_attribute("for") for e in driver.find_elements("css selector", ".filters label")}
        driver.find_element("css selector", f"label[for='{labels['executives']}']").click()
        assert not _visible(driver, ".card")  # executives do not follow the status page
        driver.find_element("css selector", "label[for='channel-all']").click()
        cards = _visible(driver, ".card")
        assert cards and all(card.find_element("css selector", ".label b").text == "executives" for card in cards)
