"""Languages end to end: an audience reading German or French gets its variants and dates in its own words."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.sendgrid import FakeSendGrid

from comms.bootstrap import bootstrap
from comms.plan.loader import load_plan
from comms.plan.models import Plan
from comms.services.scheduling import schedule_cutover
from tests.support.clock import FakeClock

from .builders import T0, make_settings

READER = "ada.lovelace@example.com"
GERMAN_ROW = "alan.turing@example.org"
FRENCH_ROW = "margaret.hamilton@example.net"


def _with_csv_locales(root: Path) -> Plan:
    """The end users' CSV gains a locale column (Alan de, Margaret fr) and the audience 'locales: [de, fr]'."""
    csv = root / "audiences" / "end-users.csv"
    locales = {GERMAN_ROW: "de", FRENCH_ROW: "fr"}
    lines = csv.read_text(encoding="utf-8").splitlines()
    rows = [lines[0] + ",locale"] + [f"{line},{locales.get(line.split(',')[0], '')}" for line in lines[1:]]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = root / "audiences" / "end-users.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "locales: [de, fr]\n", encoding="utf-8")
    return load_plan(root)


def _with_locale(root: Path, locale: str) -> Plan:
    """The whole audience reads ``locale`` (its CSV's locale column then unused)."""
    path = root / "audiences" / "end-users.yaml"
    text = re.sub(r"(?m)^locales:.*\n", "", path.read_text(encoding="utf-8"))
    path.write_text(text + f"locale: {locale}\n", encoding="utf-8")
    return load_plan(root)  # templates checked: every variant renders with sample data


def _send_advance_notice(tmp_path: Path, plan: Plan, sendgrid: FakeSendGrid, clock: FakeClock) -> None:
    services = bootstrap(make_settings(tmp_path, sendgrid=sendgrid), clock=clock, sleep=clock.sleep)
    services.dispatcher.plans.put(plan)
    schedule_cutover(services.engine, plan, start=T0, now=clock())
    services.dispatcher.run_until_idle()


def _body_to(sendgrid: FakeSendGrid, address: str) -> dict[str, Any]:
    [body] = [b for b in sendgrid.accepted if any(p["to"][0]["email"] == address for p in b["personalizations"])]
    return body


def _advance_notice_to(tmp_path: Path, plan: Plan, sendgrid: FakeSendGrid, clock: FakeClock) -> dict[str, Any]:
    _send_advance_notice(tmp_path, plan, sendgrid, clock)
    return _body_to(sendgrid, READER)


def _text(body: dict[str, Any]) -> str:
    text = next(c["value"] for c in body["content"] if c["type"] == "text/plain")
    return text.replace("\u00a0", " ")  # Babel writes French lengths with a no-break space


def test_german_end_user_gets_german_wording_and_a_german_date(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """locale: de -> the German variant, 'Samstag, 5. Dezember 2026', German lengths and layout."""
    body = _advance_notice_to(tmp_path, _with_locale(plan_copy, "de"), sendgrid, clock)
    assert body["subject"] == "Geplante Wartung am Samstag, 5. Dezember 2026: Die App ist kurz nicht erreichbar"
    text = _text(body)
    assert "Die Arbeiten beginnen um 17:00 EST" in text and "höchstens 12 Stunden" in text
    assert "Wartungsfenster:" in text and "Fragen: support@example.com" in text
    assert "Saturday" not in text and "What you need to do" not in text
    assert sendgrid.violations == []


def test_french_end_user_gets_french_wording_and_a_french_date(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """locale: fr -> the French variant, 'samedi 5 décembre 2026', French lengths."""
    body = _advance_notice_to(tmp_path, _with_locale(plan_copy, "fr"), sendgrid, clock)
    assert body["subject"].startswith("Maintenance prévue le samedi 5 décembre 2026")
    text = _text(body)
    assert "au plus 12 heures" in text and "Fenêtre de maintenance" in text
    assert "Saturday" not in text


def test_csv_locale_column_gives_each_reader_their_language_with_one_render_each(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """locales: [de, fr]: CSV rows marked de and fr get German and French, the others English; one render each."""
    _send_advance_notice(tmp_path, _with_csv_locales(plan_copy), sendgrid, clock)
    assert _body_to(sendgrid, GERMAN_ROW)["subject"].startswith("Geplante Wartung am Samstag, 5. Dezember 2026")
    assert _body_to(sendgrid, FRENCH_ROW)["subject"].startswith("Maintenance prévue le samedi 5 décembre 2026")
    assert "Saturday 5 December 2026" in _body_to(sendgrid, READER)["subject"]
    end_user_bodies = {
        id(b)
        for b in sendgrid.accepted
        for p in b["personalizations"]
        if p["to"][0]["email"] in (READER, GERMAN_ROW, FRENCH_ROW)
    }
    assert len(end_user_bodies) == 3  # one request per language: English (Ada, Grace), German, French


def test_staff_without_a_locale_keep_the_english_wording(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """Only the audience that reads German is written to in German."""
    plan = _with_locale(plan_copy, "de")
    _advance_notice_to(tmp_path, plan, sendgrid, clock)
    [staff] = [
        b for b in sendgrid.accepted if any(p["to"][0]["email"] == "cto@example.com" for p in b["personalizations"])
    ]
    assert "Saturday" in staff["subject"] or "Sat" in _text(staff)


def test_validate_names_the_messages_without_a_variant(cli: Any, plan_copy: Path) -> None:
    """comms validate lists, per audience and locale, the messages that would go in English."""
    _with_locale(plan_copy, "de")
    result = cli("validate", "--plan", plan_copy)
    output = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "Missing translations: audience 'end-users' reads de" in output
    assert "cancellation (email)" in output and "advance-notice (email)" not in output


@pytest.mark.parametrize("locale", ["xx-nowhere", "klingon"])
def test_unknown_locale_is_refused(plan_copy: Path, locale: str) -> None:
    """A locale Babel does not know fails validation instead of rendering English silently."""
    from comms.errors import PlanError

    with pytest.raises(PlanError, match="unknown locale"):
        _with_locale(plan_copy, locale)


def test_lengths_and_numbers_follow_the_locale() -> None:
    """Babel writes lengths and numbers in the reader's words and digits."""
    from comms.core.locale_format import duration, number

    assert duration(timedelta(hours=12), "de") == "12 Stunden"
    assert duration(timedelta(minutes=5), "fr").replace("\u00a0", " ") == "5 minutes"
    assert number(12840, "de") == "12.840" and number(12840, "en") == "12,840"
