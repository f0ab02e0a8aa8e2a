"""The console's queries: the store answers, lane states of a cutover, ack links already used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, text
from sqlalchemy import select as sa_select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from comms.errors import StoreError
from comms.store.tables import AckTokenUseRow, DeliveryRow
from comms.store.transaction import add_once

__all__ = ["LaneCount", "ack_token_use", "claim_ack_token", "lane_counts", "release_ack_token", "store_answers"]


@dataclass(frozen=True)
class LaneCount:
    """How many deliveries of one occurrence to one audience on one channel are in one state."""

    occurrence_id: int
    audience: str
    channel: str
    state: str
    count: int


def store_answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query (the console's health check)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, StoreError, OSError):  # the database does not answer: the caller answers 503
        return False
    return True


def lane_counts(session: Session, cutover_id: int) -> list[LaneCount]:
    """The cutover's deliveries counted by occurrence, audience, channel and state (one GROUP BY)."""
    rows = session.execute(
        sa_select(
            col(DeliveryRow.occurrence_id),
            col(DeliveryRow.audience),
            col(DeliveryRow.channel),
            col(DeliveryRow.state),
            func.count(),
        )
        .where(col(DeliveryRow.cutover_id) == cutover_id)
        .group_by(
            col(DeliveryRow.occurrence_id), col(DeliveryRow.audience), col(DeliveryRow.channel), col(DeliveryRow.state)
        )
    ).all()
    return [LaneCount(int(o), str(a), str(c), str(s), int(n)) for o, a, c, s, n in rows]


def ack_token_use(session: Session, digest: str) -> AckTokenUseRow | None:
    """The recorded use of an ack token (by its digest), or None when it was never used."""
    return session.exec(select(AckTokenUseRow).where(AckTokenUseRow.token_digest == digest)).first()


def claim_ack_token(
    engine: Engine, digest: str, *, incident_id: int, level: int, recipient: str, now: datetime
) -> bool:
    """Record the one use of an ack token; False when it was used before (the UNIQUE digest says so)."""
    row = AckTokenUseRow(token_digest=digest, incident_id=incident_id, level=level, recipient=recipient, used_at=now)
    return add_once(engine, row)


def release_ack_token(engine: Engine, digest: str) -> None:
    """Forget a claimed token whose acknowledgement failed (the database refused), so it can be tried again."""
    with Session(engine) as session:
        row = ack_token_use(session, digest)
        if row is not None:
            session.delete(row)
            session.commit()
