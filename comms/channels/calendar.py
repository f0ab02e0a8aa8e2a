"""The maintenance window as an iCalendar (.ics) invitation, shared by the email adapter and the outbox.

Times are written in UTC (``DTSTART:20261205T220000Z``) so every calendar shows the same instant as
the status page, whatever the reader's zone. The UID stays the same for one cutover across messages,
and SEQUENCE counts the reschedules and the cancel, so (RFC 5546) an invitation sent after a move
supersedes the entry already in the reader's calendar, and a cancel (``METHOD:CANCEL``,
``STATUS:CANCELLED``, the next SEQUENCE) removes it.

The invitations are iTIP PUBLISH (RFC 5546 section 3.2.1), updated by a later PUBLISH and ended by
CANCEL: one attachment goes to up to 1000 recipients of one request, and a REQUEST must name its
ATTENDEEs, which would show every recipient to every other. PUBLISH and CANCEL carry the ORGANIZER,
DTSTAMP, UID and SEQUENCE those methods require, and no ATTENDEE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from comms.channels.base import MaintenanceWindow
from comms.clock import ensure_utc

__all__ = ["CalendarAttachment", "FILENAME", "Method", "PRODID", "build_ics"]

Method = Literal["PUBLISH", "REQUEST", "CANCEL"]

PRODID = "-//comms//cutover communications//EN"
FILENAME = "maintenance.ics"


@dataclass(frozen=True)
class CalendarAttachment:
    """A ready-to-attach invitation: its bytes, file name and MIME type."""

    data: bytes
    filename: str
    method: Method

    @property
    def content_type(self) -> str:
        """The full Content-Type, with the iTIP method mail clients look for."""
        return f"text/calendar; method={self.method}; charset=UTF-8"


def build_ics(
    window: MaintenanceWindow,
    *,
    organizer_email: str,
    organizer_name: str | None = None,
    stamp: datetime,
    method: Method = "PUBLISH",
) -> CalendarAttachment:
    """Build a VCALENDAR with one VEVENT for ``window`` (UTC start and end, UID, SUMMARY, DESCRIPTION).

    A cancelled window is always a CANCEL with ``STATUS:CANCELLED``, whatever ``method`` says.
    """
    from icalendar import Calendar, Event, vCalAddress

    start, end, stamp = ensure_utc(window.start), ensure_utc(window.end), ensure_utc(stamp)
    if end <= start:
        raise ValueError(f"maintenance window {window.uid} ends ({end}) before it starts ({start})")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if window.cancelled:
        method = "CANCEL"
    calendar.add("method", method)
    event = Event()
    event.add("uid", window.uid)
    event.add("dtstamp", stamp.replace(microsecond=0))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", window.title)
    event.add("description", window.description)
    event.add("sequence", window.sequence)
    event.add("status", "CANCELLED" if window.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    organizer = vCalAddress(f"mailto:{organizer_email}")
    if organizer_name:
        organizer.params["cn"] = organizer_name
    event.add("organizer", organizer)
    calendar.add_component(event)
    return CalendarAttachment(data=calendar.to_ical(), filename=FILENAME, method=method)
