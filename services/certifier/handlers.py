"""The certifier's handlers: certificates from deterministic ledger state only."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from uuid import UUID

from services.certifier.adapters.certificates import Certificate, Certificates, CompletedEnrolment
from services.certifier.domain import reopen_applies, should_issue
from shared.db.uow import TenantUnitOfWork
from shared.errors import ReferenceNotFound
from shared.events import (
    CertificateIssued,
    CertificateRevoked,
    CloudEvent,
    EnrolmentCompleted,
    EnrolmentReopened,
    new_event,
)
from shared.ids import derived_id
from shared.links import verification_url
from shared.metrics import CERTIFICATES
from shared.outbox import enqueue

SOURCE = "/programmes/certifier"
TOKEN_BYTES = 24  # 192 bits from the CSPRNG, 32 characters of base64url


def new_public_token() -> str:
    """A verification token: unguessable, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _no_op() -> None:
    pass


class Certifier:
    """Issues a certificate per completion and revokes it when a requirement is taken back."""

    def __init__(
        self,
        topic_prefix: str,
        public_base_url: str,
        on_events_enqueued: Callable[[], None] = _no_op,
        new_token: Callable[[], str] = new_public_token,
    ) -> None:
        self._topic_prefix = topic_prefix
        self._public_base_url = public_base_url
        self._on_events_enqueued = on_events_enqueued
        self._new_token = new_token

    async def on_enrolment_completed(self, uow: TenantUnitOfWork, event: CloudEvent[Any]) -> str:
        """Issue the certificate of this completion (once, even on replay)."""
        data: EnrolmentCompleted = event.data
        store = Certificates(uow.connection)
        enrolment = await _enrolment(store, data.enrolment_id)
        if await store.issued_for(event.id):
            return "already_issued"
        if not should_issue(enrolment.status, enrolment.completed_at, data.completed_at):
            return "stale"
        previous = await store.live_certificate(enrolment.id)
        if previous is not None:  # a completion after a reopening we have not seen yet
            await self._revoke(
                uow, store, enrolment, previous, "superseded by a new completion", event
            )
        certificate = await store.insert(
            id=derived_id("certificate", uow.tenant_id, event.id),
            enrolment_id=enrolment.id,
            user_id=enrolment.user_id,
            org_unit_id=enrolment.org_unit_id,
            programme_id=enrolment.programme_id,
            programme_version=enrolment.programme_version,
            issued_at=data.completed_at,
            public_token=self._new_token(),
            holder_display_name=enrolment.user_display_name,
            completion_event_id=event.id,
        )
        await store.set_enrolment_status(
            enrolment, "certified", certificate.issued_at, "certified", _cause(event)
        )
        await self._emit(uow, "certificate.issued", enrolment, certificate, event)
        return "issued"

    async def on_enrolment_reopened(self, uow: TenantUnitOfWork, event: CloudEvent[Any]) -> str:
        """Revoke the live certificate of an enrolment that is reopened."""
        data: EnrolmentReopened = event.data
        store = Certificates(uow.connection)
        enrolment = await _enrolment(store, data.enrolment_id)
        if not reopen_applies(enrolment.status):
            return "stale"
        certificate = await store.live_certificate(enrolment.id)
        if certificate is None:
            return "nothing_to_revoke"
        await self._revoke(uow, store, enrolment, certificate, data.reason, event)
        return "revoked"

    async def _revoke(
        self,
        uow: TenantUnitOfWork,
        store: Certificates,
        enrolment: CompletedEnrolment,
        certificate: Certificate,
        reason: str,
        event: CloudEvent[Any],
    ) -> None:
        await store.revoke(certificate.id, reason, event.time)
        revoked = Certificate(
            certificate.id,
            certificate.issued_at,
            certificate.expires_at,
            certificate.public_token,
            "revoked",
        )
        await self._emit(uow, "certificate.revoked", enrolment, revoked, event, reason)

    async def _emit(
        self,
        uow: TenantUnitOfWork,
        event_type: str,
        enrolment: CompletedEnrolment,
        certificate: Certificate,
        cause: CloudEvent[Any],
        reason: str | None = None,
    ) -> None:
        fields = {
            "certificate_id": certificate.id,
            "enrolment_id": enrolment.id,
            "user_id": enrolment.user_id,
            "program_id": enrolment.programme_id,
            "issued_at": certificate.issued_at,
            "expires_at": certificate.expires_at,
            "status": certificate.status,
            "verification_url": verification_url(self._public_base_url, certificate.public_token),
        }
        data = (
            CertificateIssued(**fields)
            if reason is None
            else CertificateRevoked(**fields, reason=reason)
        )
        event = new_event(
            event_type,
            event_id=derived_id(event_type, uow.tenant_id, certificate.id, cause.id),
            source=SOURCE,
            tenant_id=uow.tenant_id,
            time=certificate.issued_at if reason is None else cause.time,
            org_unit_id=enrolment.org_unit_id,
            traceparent=cause.traceparent,
            data=data,
        )
        if await enqueue(
            uow.connection, event, topic_prefix=self._topic_prefix, key=str(enrolment.id)
        ):
            uow.after_commit(self._on_events_enqueued)
            decision = "issued" if reason is None else "revoked"
            uow.after_commit(CERTIFICATES.labels(decision).inc)


async def _enrolment(store: Certificates, enrolment_id: UUID) -> CompletedEnrolment:
    enrolment = await store.lock_enrolment(enrolment_id)
    if enrolment is None:
        raise ReferenceNotFound(f"enrolment {enrolment_id} not found")
    return enrolment


def _cause(event: CloudEvent[Any]) -> tuple[UUID, str, Any]:
    return (event.id, event.type, event.time)
