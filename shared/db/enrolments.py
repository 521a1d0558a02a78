"""The enrolment status history, shared by every service that changes a status."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from uuid import UUID

from shared.db.pool import Connection
from shared.db.queries import load_queries

_sql = load_queries(Path(__file__).with_name("sql") / "enrolments.sql")


async def record_status_change(
    conn: Connection,
    enrolment_id: UUID,
    *,
    status: str,
    previous_status: str,
    reason: str,
    cause: tuple[UUID, str, datetime],
    requirement_id: UUID | None = None,
) -> None:
    """Append an enrolment's status change with the event (id, type, time) that caused it."""
    event_id, event_type, decided_at = cause
    await _sql.append_enrolment_history(
        conn,
        enrolment_id=enrolment_id,
        status=status,
        previous_status=previous_status,
        reason=reason,
        requirement_id=requirement_id,
        event_id=event_id,
        event_type=event_type,
        decided_at=decided_at,
    )
