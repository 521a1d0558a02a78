"""The renewer's storage: typed methods over the named queries of renewer.sql.

`CertificateStore` is bound to one open tenant unit of work and never commits;
`renewals_due` and `expiries_due` are the cross-tenant scans (keys only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from services.renewer.domain import CertificateTerm
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries
from shared.events import CloudEvent

_sql = load_queries(Path(__file__).with_name("sql") / "renewer.sql")


@dataclass(frozen=True)
class Due:
    """A certificate a scan found due; `due_at` orders the scan (and pages it)."""

    due_at: datetime
    tenant_id: UUID
    certificate_id: UUID


START = Due(datetime(1, 1, 1, tzinfo=UTC), UUID(int=0), UUID(int=0))
"""A cursor before every certificate."""


@dataclass(frozen=True)
class Enrolment:
    """The enrolment a certificate was issued for, locked for the transaction."""

    id: UUID
    status: str
    user_id: UUID
    org_unit_id: UUID | None
    user_display_name: str | None


@dataclass(frozen=True)
class Certificate:
    """A certificate, locked for the transaction."""

    id: UUID
    enrolment_id: UUID
    user_id: UUID
    programme_id: UUID
    issued_at: datetime
    expires_at: datetime | None
    public_token: str
    term: CertificateTerm


class CertificateStore:
    """Reads and writes of certificates and their enrolments in one tenant transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def lock(self, certificate_id: UUID) -> tuple[Certificate, Enrolment] | None:
        """The certificate with what the rules need, and its enrolment, both locked
        until the transaction ends (None if the certificate is not this tenant's)."""
        row = await _sql.lock_certificate(self._conn, id=certificate_id)
        return None if row is None else _locked(row)

    async def lock_many(self, certificate_ids: list[UUID]) -> list[tuple[Certificate, Enrolment]]:
        """`lock` for many (those of this tenant), in one statement: the enrolments
        locked first, in id order, then the certificates; in certificate id order."""
        rows = await fetch_all(_sql.lock_certificates(self._conn, ids=certificate_ids))
        return [_locked(row) for row in rows]

    async def request_renewals(self, renewals: list[tuple[UUID, UUID]], now: datetime) -> set[UUID]:
        """Record each (certificate, renewal enrolment) asked for; the certificates
        for which it was recorded (not those that already had one)."""
        if not renewals:
            return set()
        ids, renewal_ids = (list(column) for column in zip(*renewals, strict=True))
        rows = await fetch_all(
            _sql.request_renewals(
                self._conn, ids=ids, renewal_enrolment_ids=renewal_ids, requested_at=now
            )
        )
        return {row["id"] for row in rows}

    async def expire_certificates(self, certificate_ids: list[UUID], now: datetime) -> set[UUID]:
        """Mark these certificates expired; those that were still active."""
        if not certificate_ids:
            return set()
        rows = await fetch_all(
            _sql.expire_certificates(self._conn, ids=certificate_ids, expired_at=now)
        )
        return {row["id"] for row in rows}

    async def expire_enrolments(self, changes: list[tuple[Enrolment, CloudEvent[Any]]]) -> None:
        """`expire_enrolment` for each (enrolment, certificate.expired event)."""
        if changes:
            await _sql.expire_enrolments(
                self._conn,
                ids=[enrolment.id for enrolment, _ in changes],
                previous_statuses=[enrolment.status for enrolment, _ in changes],
                event_ids=[event.id for _, event in changes],
                event_types=[event.type for _, event in changes],
                decided_ats=[event.time for _, event in changes],
            )

    async def request_renewal(
        self, certificate_id: UUID, renewal_enrolment_id: UUID, now: datetime
    ) -> bool:
        """Record the renewal asked for; False if one already was."""
        return bool(
            await _sql.request_renewal(
                self._conn,
                id=certificate_id,
                renewal_enrolment_id=renewal_enrolment_id,
                requested_at=now,
            )
        )

    async def expire_certificate(self, certificate_id: UUID, now: datetime) -> bool:
        """Mark an active certificate expired; False if it was not active."""
        return bool(await _sql.expire_certificate(self._conn, id=certificate_id, expired_at=now))

    async def expire_enrolment(
        self, enrolment: Enrolment, event_id: UUID, event_type: str, decided_at: datetime
    ) -> None:
        """Set the enrolment expired, with its history entry naming the event."""
        await _sql.expire_enrolment(
            self._conn,
            id=enrolment.id,
            previous_status=enrolment.status,
            event_id=event_id,
            event_type=event_type,
            decided_at=decided_at,
        )


async def renewals_due(conn: Connection, now: datetime, after: Due, limit: int) -> list[Due]:
    """Certificates of every tenant whose renewal window is open at `now` and that
    asked for no renewal yet, after the cursor `after`, in scan order."""
    return _due(
        await fetch_all(
            _sql.renewals_due(
                conn,
                now=now,
                after_at=after.due_at,
                after_tenant=after.tenant_id,
                after_id=after.certificate_id,
                limit=limit,
            )
        )
    )


async def expiries_due(conn: Connection, now: datetime, after: Due, limit: int) -> list[Due]:
    """Active certificates of every tenant expired at `now`, after the cursor `after`."""
    return _due(
        await fetch_all(
            _sql.expiries_due(
                conn,
                now=now,
                after_at=after.due_at,
                after_tenant=after.tenant_id,
                after_id=after.certificate_id,
                limit=limit,
            )
        )
    )


def _locked(row: Any) -> tuple[Certificate, Enrolment]:
    certificate = Certificate(
        id=row["id"],
        enrolment_id=row["enrolment_id"],
        user_id=row["user_id"],
        programme_id=row["programme_id"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        public_token=row["public_token"],
        term=CertificateTerm(
            status=row["status"],
            expires_at=row["expires_at"],
            renewal_opens_at=row["renewal_opens_at"],
            renewal_requested=row["renewal_enrolment_id"] is not None,
            programme_archived=row["programme_archived"],
        ),
    )
    enrolment = Enrolment(
        id=row["enrolment_id"],
        status=row["enrolment_status"],
        user_id=row["enrolment_user_id"],
        org_unit_id=row["enrolment_org_unit_id"],
        user_display_name=row["user_display_name"],
    )
    return certificate, enrolment


def _due(rows: list[Any]) -> list[Due]:
    return [Due(r["due_at"], r["tenant_id"], r["certificate_id"]) for r in rows]
