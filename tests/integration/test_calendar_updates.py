"""Calendar updates end to end against the SendGrid fake: one UID per cutover, a rising SEQUENCE, a CANCEL."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.sendgrid import FakeSendGrid
from icalendar import Calendar

from comms.bootstrap import Services, bootstrap
from comms.plan.loader import load_plan
from comms.plan.models import Trigger
from comms.services.scheduling import apply_event, schedule_cutover
from tests.support.clock import FakeClock

from .builders import T0, make_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)
READER = "ada.lovelace@example.com"
NEW_T0 = T0 + timedelta(days=7)


def _invites_to(sendgrid: FakeSendGrid, address: str) -> list[Calendar]:
    """The .ics attachments of the accepted emails that went to ``address``, in the order sent."""
    found: list[Calendar] = []
    for body in sendgrid.accepted:
        to = [t["email"] for p in body["personalizations"] for t in p["to"]]
        if address in to and body.get("attachments"):
            (attachment,) = body["attachments"]
            found.append(Calendar.from_ical(base64.b64decode(attachment["content"])))
    return found


def _apply(entries: dict[str, dict[str, Any]], calendar: Calendar) -> None:
    """What a calendar does with an iTIP message (RFC 5546): newer SEQUENCE wins, CANCEL removes."""
    (event,) = calendar.walk("VEVENT")
    uid, sequence = str(event["UID"]), int(event["SEQUENCE"])
    known = entries.get(uid)
    if known is not None and sequence < known["sequence"]:
        return
    if str(calendar["METHOD"]) == "CANCEL":
        entries.pop(uid, None)
        return
    entries[uid] = {"sequence": sequence, "start": event.decoded("DTSTART"), "end": event.decoded("DTEND")}


def _check_rfc5546(calendar: Calendar) -> None:
    """The properties RFC 5545/5546 require of a PUBLISH or CANCEL VEVENT are there, and nothing forbidden."""
    assert str(calendar["VERSION"]) == "2.0" and calendar.get("PRODID")
    (event,) = calendar.walk("VEVENT")
    for name in ("UID", "DTSTAMP", "ORGANIZER", "SEQUENCE"):
        assert event.get(name) is not None, name
    assert str(event["ORGANIZER"]).startswith("mailto:")
    assert "ATTENDEE" not in event  # PUBLISH forbids attendees; nobody sees the other recipients
    stamp = event.decoded("DTSTAMP")
    assert isinstance(stamp, datetime) and stamp.utcoffset() == timedelta(0)
    if str(calendar["METHOD"]) == "CANCEL":
        assert str(event["STATUS"]) == "CANCELLED"
    else:
        assert str(calendar["METHOD"]) == "PUBLISH" and event.get("DTSTART") and event.get("SUMMARY")


@pytest.fixture
def services(tmp_path: Path, sendgrid: FakeSendGrid, clock: FakeClock) -> Services:
    built = bootstrap(make_settings(tmp_path, sendgrid=sendgrid), clock=clock, sleep=clock.sleep)
    built.dispatcher.plans.put(PLAN)
    return built


def _event(services: Services, clock: FakeClock, trigger: Trigger, **kwargs: Any) -> None:
    outcome = apply_event(services.engine, PLAN, cutover_name=None, event=trigger, now=clock(), **kwargs)
    services.dispatcher.dispatch_now(outcome.fired)
    services.dispatcher.run_until_idle()


def test_reschedule_then_cancel_moves_then_removes_the_calendar_entry(
    services: Services, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """A reader's calendar, fed the three invitations, shows the window, then the moved window, then nothing."""
    schedule_cutover(services.engine, PLAN, start=T0, now=clock())
    services.dispatcher.run_until_idle()  # T-48h: the advance notice with its invitation
    entries: dict[str, dict[str, Any]] = {}
    (first,) = _invites_to(sendgrid, READER)
    _apply(entries, first)
    assert [e["start"] for e in entries.values()] == [T0]

    clock.advance(3600)
    _event(services, clock, Trigger.RESCHEDULE, new_start=NEW_T0, reason="the vendor asked for a week")
    first_again, moved = _invites_to(sendgrid, READER)
    _apply(entries, moved)
    assert [(e["start"], e["end"]) for e in entries.values()] == [(NEW_T0, NEW_T0 + PLAN.cutover.window)]

    clock.advance(3600)
    _event(services, clock, Trigger.CANCEL, reason="the migration is no longer needed")
    *_, cancelled = _invites_to(sendgrid, READER)
    _apply(entries, cancelled)
    assert entries == {}
    assert sendgrid.violations == []


def test_invitations_keep_one_uid_and_raise_the_sequence(
    services: Services, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """Advance notice, reschedule notice and cancellation share the UID; SEQUENCE 0, 1, 2; METHOD ends CANCEL."""
    schedule_cutover(services.engine, PLAN, start=T0, now=clock())
    services.dispatcher.run_until_idle()
    clock.advance(3600)
    _event(services, clock, Trigger.RESCHEDULE, new_start=NEW_T0, reason="the vendor asked for a week")
    clock.advance(3600)
    _event(services, clock, Trigger.CANCEL, reason="the migration is no longer needed")
    invites = _invites_to(sendgrid, READER)
    events = [c.walk("VEVENT")[0] for c in invites]
    assert [str(c["METHOD"]) for c in invites] == ["PUBLISH", "PUBLISH", "CANCEL"]
    assert {str(e["UID"]) for e in events} == {"firestore-to-supabase@comms"}
    assert [int(e["SEQUENCE"]) for e in events] == [0, 1, 2]
    stamps = [e.decoded("DTSTAMP") for e in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    for calendar in invites:
        _check_rfc5546(calendar)
