"""The certifier's storage: typed methods over certificates.sql."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from shared.db.enrolments import record_status_change
from shared.db.pool import Connection
from shared.db.queries import load_queries

_sql = load_queries(Path(__file__).with_name("sql") / "certificates.sql")


@dataclass(frozen=True)
class CompletedEnrolment:
    """An enrolment as the certifier sees it, locked for the transaction."""

    id: UUID
    status: str
    completed_at: datetime | None
    user_id: UUID
    org_unit_id: UUID | None
    programme_id: UUID
    programme_version: int
    user_display_name: str | None


@dataclass(frozen=True)
class Certificate:
    """A certificate's public facts."""

    id: UUID
    issued_at: datetime
    expires_at: datetime | None
    public_token: str
    status: str


@dataclass(frozen=True)
class Verification:
    """What the verification lookup returns: display fields only."""

    programme_name: str
    badge_image_url: str | None
    holder_display_name: str | None
    holder_name_rule: str
    issued_at: datetime
    expires_at: datetime | None
    status: str


def _certificate(row: Any) -> Certificate:
    return Certificate(
        row["id"], row["issued_at"], row["expires_at"], row["public_token"], row["status"]
    )


class Certificates:
    """Certificate reads and writes inside one tenant transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def lock_enrolment(self, enrolment_id: UUID) -> CompletedEnrolment | None:
        """The enrolment (None if not in this tenant), locked."""
        row = await _sql.lock_enrolment(self._conn, id=enrolment_id)
        return None if row is None else CompletedEnrolment(**dict(row))

    async def live_certificate(self, enrolment_id: UUID) -> Certificate | None:
        """The enrolment's certificate that is not revoked, locked."""
        row = await _sql.live_certificate(self._conn, enrolment_id=enrolment_id)
        return None if row is None else _certificate(row)

    async def issued_for(self, completion_event_id: UUID) -> bool:
        """Whether this completion already issued a certificate."""
        row = await _sql.certificate_for_completion(
            self._conn, completion_event_id=completion_event_id
        )
        return row is not None

    async def insert(self, **columns: Any) -> Certificate:
        """Issue a certificate; expiry = issued_at + validity_period (none without)."""
        return _certificate(await _sql.insert_certificate(self._conn, **columns))

    async def revoke(self, certificate_id: UUID, reason: str, at: datetime) -> None:
        """Revoke; the record and its token stay."""
        await _sql.revoke(self._conn, id=certificate_id, reason=reason, at=at)

    async def set_enrolment_status(
        self,
        enrolment: CompletedEnrolment,
        status: str,
        certified_at: datetime | None,
        reason: str,
        cause: tuple[UUID, str, datetime],
    ) -> None:
        """Change the enrolment's status, with its history entry."""
        await _sql.set_enrolment_status(
            self._conn, id=enrolment.id, status=status, certified_at=certified_at
        )
        await record_status_change(
            self._conn,
            enrolment.id,
            status=status,
            previous_status=enrolment.status,
            reason=reason,
            cause=cause,
        )


async def verify(conn: Connection, token: str) -> Verification | None:
    """Look a token up without tenant context (through verify_certificate)."""
    row = await _sql.verify(conn, token=token)
    return None if row is None else Verification(**dict(row))
