"""The certifier's storage: typed methods over certificates.sql."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from shared.db.enrolments import record_status_change
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries

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

    def with_status(self, status: str) -> CompletedEnrolment:
        """The same enrolment with another status (cheaper than dataclasses.replace)."""
        return CompletedEnrolment(
            self.id,
            status,
            self.completed_at,
            self.user_id,
            self.org_unit_id,
            self.programme_id,
            self.programme_version,
            self.user_display_name,
        )


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


@dataclass(frozen=True)
class NewCertificate:
    """A certificate to issue (one of a group)."""

    id: UUID
    enrolment: CompletedEnrolment
    issued_at: datetime
    public_token: str
    completion_event_id: UUID


@dataclass(frozen=True)
class Certification:
    """An enrolment becoming certified, and the event (id, type, time) that caused it."""

    enrolment: CompletedEnrolment  # its state before
    certified_at: datetime
    cause: tuple[UUID, str, datetime]


class CertificateGroups:
    """The set-based reads and writes of a group of events, in one tenant transaction:
    one statement per step whatever the group's size."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def lock_enrolments(self, ids: list[UUID]) -> dict[UUID, CompletedEnrolment]:
        """The enrolments found among `ids` (this tenant's), locked in id order."""
        rows = await fetch_all(_sql.lock_enrolments(self._conn, ids=ids))
        return {row["id"]: CompletedEnrolment(**dict(row)) for row in rows}

    async def live_certificates(self, enrolment_ids: list[UUID]) -> dict[UUID, Certificate]:
        """enrolment id -> its certificate that is not revoked, locked."""
        rows = await fetch_all(_sql.live_certificates(self._conn, enrolment_ids=enrolment_ids))
        return {row["enrolment_id"]: _certificate(row) for row in rows}

    async def issued_for(self, completion_event_ids: list[UUID]) -> set[UUID]:
        """Which of these completions already issued a certificate."""
        if not completion_event_ids:
            return set()
        rows = await fetch_all(
            _sql.certificates_for_completions(self._conn, completion_event_ids=completion_event_ids)
        )
        return {row["completion_event_id"] for row in rows}

    async def revoke(self, revocations: list[tuple[UUID, str, datetime]]) -> None:
        """Revoke (certificate id, reason, at) each; records and tokens stay."""
        if revocations:
            ids, reasons, ats = (list(column) for column in zip(*revocations, strict=True))
            await _sql.revoke_many(self._conn, ids=ids, reasons=reasons, ats=ats)

    async def insert(self, certificates: list[NewCertificate]) -> dict[UUID, Certificate]:
        """Issue these certificates (expiry from each pinned version); id -> as stored."""
        if not certificates:
            return {}
        rows = await fetch_all(
            _sql.insert_certificates(
                self._conn,
                ids=[c.id for c in certificates],
                enrolment_ids=[c.enrolment.id for c in certificates],
                user_ids=[c.enrolment.user_id for c in certificates],
                org_unit_ids=[c.enrolment.org_unit_id for c in certificates],
                programme_ids=[c.enrolment.programme_id for c in certificates],
                programme_versions=[c.enrolment.programme_version for c in certificates],
                issued_ats=[c.issued_at for c in certificates],
                public_tokens=[c.public_token for c in certificates],
                holder_display_names=[c.enrolment.user_display_name for c in certificates],
                completion_event_ids=[c.completion_event_id for c in certificates],
            )
        )
        return {row["id"]: _certificate(row) for row in rows}

    async def certify(self, changes: list[Certification]) -> None:
        """Set each enrolment certified, with its history entry."""
        if changes:
            await _sql.certify_enrolments(
                self._conn,
                ids=[c.enrolment.id for c in changes],
                previous_statuses=[c.enrolment.status for c in changes],
                certified_ats=[c.certified_at for c in changes],
                event_ids=[c.cause[0] for c in changes],
                event_types=[c.cause[1] for c in changes],
                decided_ats=[c.cause[2] for c in changes],
            )


async def verify(conn: Connection, token: str) -> Verification | None:
    """Look a token up without tenant context (through verify_certificate)."""
    row = await _sql.verify(conn, token=token)
    return None if row is None else Verification(**dict(row))


async def verify_many(conn: Connection, tokens: list[str]) -> dict[str, Verification]:
    """`verify` for several tokens in one statement: token -> what it shows (the
    tokens found only)."""
    rows = await fetch_all(_sql.verify_many(conn, tokens=tokens))
    found = {}
    for row in rows:
        fields = dict(row)
        token = fields.pop("token")
        found[token] = Verification(**fields)
    return found
