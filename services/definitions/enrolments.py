"""Operator enrolments: an `enrolment.created` written to the outbox, exactly as the
platform would send it, so the orchestrator treats both alike.

Runs inside a tenant unit of work; the caller commits, then relays the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

from pydantic import ValidationError

from services.definitions.errors import DefinitionsError, NotFound, ProgrammeArchived
from shared.db.pool import Connection
from shared.db.queries import load_queries
from shared.events import EnrolmentCreated, new_event
from shared.ids import derived_id
from shared.outbox import enqueue

SOURCE = "/programmes/cli"
_sql = load_queries(Path(__file__).with_name("sql") / "programmes.sql")


@dataclass(frozen=True)
class EnrolmentRequest:
    """What `enrol` asked for; `requested` is False when this very enrolment had
    already been requested (its event is derived from the enrolment id)."""

    enrolment_id: UUID
    event_id: UUID
    programme_id: UUID
    programme_key: str
    latest_version: int
    enrolled_at: datetime
    requested: bool


@dataclass(frozen=True)
class Enrolment:
    """Who enrols on what."""

    programme_key: str
    user_id: UUID
    enrolment_id: UUID
    display_name: str | None = None


async def request_enrolment(
    conn: Connection, tenant_id: UUID, wanted: Enrolment, *, now: datetime, topic_prefix: str
) -> EnrolmentRequest:
    """Check the programme takes enrolments and enqueue `enrolment.created`."""
    programme_id, version = await _open_programme(conn, wanted.programme_key)
    # Derived from the enrolment id: asking twice for one enrolment publishes once.
    event_id = derived_id("enrolment.created", tenant_id, wanted.enrolment_id)
    event = new_event(
        "enrolment.created",
        event_id=event_id,
        source=SOURCE,
        tenant_id=tenant_id,
        time=now,
        data=_payload(wanted, programme_id, now),
    )
    written = await enqueue(conn, event, topic_prefix=topic_prefix, key=str(wanted.enrolment_id))
    if written and await _sql.enrolment_exists(conn, id=wanted.enrolment_id):
        # Not ours to repeat: the id was taken by an enrolment from elsewhere.
        raise DefinitionsError(f"enrolment {wanted.enrolment_id} already exists")
    return EnrolmentRequest(
        enrolment_id=wanted.enrolment_id,
        event_id=event_id,
        programme_id=programme_id,
        programme_key=wanted.programme_key,
        latest_version=version,
        enrolled_at=now,
        requested=written,
    )


async def _open_programme(conn: Connection, key: str) -> tuple[UUID, int]:
    row = await _sql.programme_for_enrolment(conn, key=key)
    if row is None:
        raise NotFound(f"programme {key!r} not found")
    if row["status"] == "archived":
        raise ProgrammeArchived(f"programme {key!r} is archived: it accepts no new enrolments")
    if row["version"] is None:
        raise NotFound(f"programme {key!r} has no published version")
    return row["id"], row["version"]


def _payload(wanted: Enrolment, programme_id: UUID, now: datetime) -> EnrolmentCreated:
    try:
        return EnrolmentCreated(
            enrolment_id=wanted.enrolment_id,
            user_id=wanted.user_id,
            program_id=programme_id,
            enrolled_at=now,
            user_display_name=wanted.display_name,
        )
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DefinitionsError(f"{field}: {first['msg']}") from None
