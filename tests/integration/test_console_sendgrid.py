"""SendGrid's signed Event Webhook: a real ECDSA P-256 key pair made here, against a real uvicorn server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, select

from comms.reports.status import cutover_status
from comms.services.incidents import open_incident
from comms.store.provider_events import unknown_key_count
from comms.store.tables import DeliveryRow, ProviderEventRow
from tests.support.console_server import ConsoleServer, start_console

PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    PRIVATE_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode("ascii")
"""The verification key as SendGrid shows it: base64 DER, no PEM armour."""


@pytest.fixture
def console(tmp_path: Path, database_url: str) -> Iterator[ConsoleServer]:
    server = start_console(tmp_path, sendgrid_public_key=PUBLIC_KEY, database_url=database_url)
    services = server.services
    outcome = open_incident(
        services.engine, services.dispatcher.plans, severity="sev1", summary="Sign-in fails", now=services.clock()
    )
    services.dispatcher.dispatch_now(outcome.occurrences)
    yield server
    server.stop()


def _email_keys(console: ConsoleServer) -> list[str]:
    with Session(console.services.engine) as session:
        rows = session.exec(select(DeliveryRow).where(DeliveryRow.channel == "email", DeliveryRow.state == "sent"))
        return sorted(row.idempotency_key for row in rows)


def _stored(console: ConsoleServer, key: str) -> ProviderEventRow | None:
    with Session(console.services.engine) as session:
        delivery = session.exec(select(DeliveryRow).where(DeliveryRow.idempotency_key == key)).one()
        return session.exec(select(ProviderEventRow).where(ProviderEventRow.delivery_id == delivery.id)).first()


def _now(console: ConsoleServer) -> int:
    return int(console.services.clock().timestamp())


def _event(key: str, kind: str, at: int, **extra: Any) -> dict[str, Any]:
    return {
        "email": "someone@example.com",
        "timestamp": at,
        "event": kind,
        "sg_event_id": f"{key}-{kind}-{at}",
        "sg_message_id": "msg.1",
        "delivery_key": key,
        **extra,
    }


def _signed(body: bytes, timestamp: int, key: ec.EllipticCurvePrivateKey = PRIVATE_KEY) -> dict[str, str]:
    signature = key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
        "Content-Type": "application/json",
    }


def _post(
    console: ConsoleServer,
    events: list[dict[str, Any]],
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    raw = body if body is not None else json.dumps(events).encode()
    with httpx.Client(timeout=10) as client:
        return client.post(
            f"{console.url}/webhooks/sendgrid",
            content=raw,
            headers=headers if headers is not None else _signed(raw, _now(console)),
        )


def _provider_counts(console: ConsoleServer) -> dict[str, Any]:
    status = cutover_status(console.services.engine, cutover_name=None, now=console.services.clock())
    counts: dict[str, Any] = status.to_json()["provider_events"]
    return counts


def test_delivered_and_bounced_events_show_in_status(console: ConsoleServer) -> None:
    """A signed batch turns one delivery delivered and one bounced; status --json counts them per audience."""
    first, second = _email_keys(console)[:2]
    now = _now(console)
    answer = _post(
        console,
        [
            _event(first, "processed", now - 5),
            _event(first, "delivered", now),
            _event(second, "bounce", now, reason="550 no such user"),
        ],
    )
    assert answer.status_code == 200
    assert answer.json() == {"applied": 3, "unchanged": 0, "unknown": 0}
    counts = _provider_counts(console)
    assert (counts["delivered"], counts["bounced"], counts["dropped"], counts["deferred"]) == (1, 1, 0, 0)
    stored = _stored(console, second)
    assert stored is not None and stored.reason == "550 no such user"


def _email_ids(console: ConsoleServer) -> dict[str, int]:
    with Session(console.services.engine) as session:
        rows = session.exec(select(DeliveryRow).where(DeliveryRow.channel == "email", DeliveryRow.state == "sent"))
        return {row.idempotency_key: int(row.id or 0) for row in rows}


def test_events_find_their_delivery_by_the_id_sent_beside_the_key(console: ConsoleServer) -> None:
    """SendGrid echoes each personalization's custom_args; the delivery_id there finds the row by its id."""
    ids = _email_ids(console)
    first, second = sorted(ids)[:2]
    now = _now(console)
    answer = _post(
        console,
        [
            _event(first, "delivered", now, delivery_id=str(ids[first])),
            _event(second, "delivered", now, delivery_id=str(ids[first])),  # an id naming another key's row
        ],
    )
    assert answer.json() == {"applied": 2, "unchanged": 0, "unknown": 0}  # the second found by its key
    assert _stored(console, first) is not None and _stored(console, second) is not None
    forged = _post(console, [_event("c|o|a|email|nobody@example.com", "delivered", now, delivery_id=str(ids[first]))])
    assert forged.json() == {"applied": 0, "unchanged": 0, "unknown": 1}  # an id alone names nothing


def test_a_repeated_batch_changes_nothing(console: ConsoleServer) -> None:
    """The same events posted twice are applied once."""
    key = _email_keys(console)[0]
    events = [_event(key, "delivered", _now(console))]
    _post(console, events)
    again = _post(console, events)
    assert again.json() == {"applied": 0, "unchanged": 1, "unknown": 0}
    assert _provider_counts(console)["delivered"] == 1


def test_events_out_of_order_keep_the_latest_event_and_the_strongest_outcome(console: ConsoleServer) -> None:
    """'delivered' then an older 'processed': last event stays delivered; a later 'open' keeps it delivered."""
    key = _email_keys(console)[0]
    now = _now(console)
    _post(console, [_event(key, "delivered", now - 10)])
    _post(console, [_event(key, "processed", now - 20)])
    stored = _stored(console, key)
    assert stored is not None and (stored.last_event, stored.outcome) == ("delivered", "delivered")
    _post(console, [_event(key, "open", now)])
    stored = _stored(console, key)
    assert stored is not None and (stored.last_event, stored.outcome) == ("open", "delivered")


def test_unknown_keys_are_counted_never_an_error(console: ConsoleServer) -> None:
    """Events for keys comms never sent (or with no key) answer 200 and are counted as unknown."""
    answer = _post(
        console,
        [_event("not-a-comms-key", "delivered", _now(console)), {"event": "delivered", "timestamp": _now(console)}],
    )
    assert answer.status_code == 200
    assert answer.json()["unknown"] == 2
    with Session(console.services.engine) as session:
        assert unknown_key_count(session, "sendgrid") == 1


def test_a_bad_signature_is_refused_and_changes_nothing(console: ConsoleServer) -> None:
    """A batch signed with another key answers 403; nothing is recorded."""
    key = _email_keys(console)[0]
    raw = json.dumps([_event(key, "delivered", _now(console))]).encode()
    other = ec.generate_private_key(ec.SECP256R1())
    answer = _post(console, [], body=raw, headers=_signed(raw, _now(console), other))
    assert answer.status_code == 403
    assert _stored(console, key) is None


def test_a_tampered_body_is_refused(console: ConsoleServer) -> None:
    """A body changed after signing (bounce turned into delivered) answers 403."""
    key = _email_keys(console)[0]
    raw = json.dumps([_event(key, "bounce", _now(console))]).encode()
    headers = _signed(raw, _now(console))
    answer = _post(console, [], body=raw.replace(b"bounce", b"delivered"), headers=headers)
    assert answer.status_code == 403
    assert _stored(console, key) is None


def test_missing_signature_headers_are_refused(console: ConsoleServer) -> None:
    """A batch without SendGrid's signature headers answers 401."""
    key = _email_keys(console)[0]
    answer = _post(console, [_event(key, "delivered", _now(console))], headers={"Content-Type": "application/json"})
    assert answer.status_code == 401
    assert _stored(console, key) is None


def test_a_garbled_signature_is_refused(console: ConsoleServer) -> None:
    """A signature that is not base64 DER answers 403, not 500."""
    raw = b"[]"
    headers = {**_signed(raw, _now(console)), "X-Twilio-Email-Event-Webhook-Signature": "%%%not-base64"}
    assert _post(console, [], body=raw, headers=headers).status_code == 403


def test_a_stale_timestamp_is_refused(console: ConsoleServer) -> None:
    """A correctly signed batch stamped more than five minutes ago answers 401 and changes nothing."""
    key = _email_keys(console)[0]
    raw = json.dumps([_event(key, "delivered", _now(console))]).encode()
    answer = _post(console, [], body=raw, headers=_signed(raw, _now(console) - 301))
    assert answer.status_code == 401
    assert _stored(console, key) is None


def test_an_oversize_batch_is_refused(console: ConsoleServer) -> None:
    """A body over 64 KB answers 413 before it is verified or read."""
    raw = b"[" + b" " * (64 * 1024) + b"]"
    assert _post(console, [], body=raw, headers=_signed(raw, _now(console))).status_code == 413


def test_the_cutover_page_shows_what_sendgrid_said(console: ConsoleServer) -> None:
    """After a delivered event the console's JSON twin and page show the audience's delivered count."""
    from tests.integration.test_console_pages import _login
    from tests.support.console_server import CONSOLE_TOKEN

    key = _email_keys(console)[0]
    _post(console, [_event(key, "delivered", _now(console))])
    with httpx.Client(base_url=console.url, timeout=10) as client:
        name = cutover_status(console.services.engine, cutover_name=None, now=console.services.clock()).cutover
        data = client.get(f"/api/cutovers/{name}", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"}).json()
        _login(client)
        page = client.get(f"/cutovers/{name}")
    assert page.status_code == 200 and "What SendGrid says" in page.text
    assert "1 (100 %)" in page.text
    assert data["provider_events"]["delivered"] == 1
    assert sum(row["delivered"] for row in data["provider_events"]["by_audience"].values()) == 1


def test_the_audit_export_carries_each_deliverys_last_provider_event(console: ConsoleServer) -> None:
    """After a bounce, the delivery's audit row names the bounce and its outcome; others have none."""
    from comms.reports.audit import iter_audit_rows

    key = _email_keys(console)[0]
    _post(console, [_event(key, "bounce", _now(console))])
    with Session(console.services.engine) as session:
        delivery_id = session.exec(select(DeliveryRow).where(DeliveryRow.idempotency_key == key)).one().id
    rows = {row.delivery_id: row for row in iter_audit_rows(console.services.engine, cutover_name=None)}
    assert (rows[delivery_id].provider_event, rows[delivery_id].provider_outcome) == ("bounce", "bounced")
    assert rows[delivery_id].provider_event_at is not None
    assert all(row.provider_event is None for row_id, row in rows.items() if row_id != delivery_id)


def test_the_report_shows_what_sendgrid_said(console: ConsoleServer) -> None:
    """After delivered and bounce events, the effectiveness report (JSON and HTML) shows them per audience."""
    from comms.reports.effectiveness import effectiveness_report
    from comms.reports.effectiveness_html import render_report_html

    first, second = _email_keys(console)[:2]
    _post(console, [_event(first, "delivered", _now(console)), _event(second, "bounce", _now(console))])
    report = effectiveness_report(console.services.engine, cutover_name=None, now=console.services.clock())
    outcomes = report.to_json()["provider_outcomes"]
    assert sum(row.get("delivered", 0) for row in outcomes.values()) == 1
    assert sum(row.get("bounced", 0) for row in outcomes.values()) == 1
    assert "What the email provider reported, by audience" in render_report_html(report)
