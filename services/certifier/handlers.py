"""The certifier's handlers: certificates from deterministic ledger state only."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from uuid import UUID

from services.certifier.adapters.certificates import (
    Certificate,
    CertificateGroups,
    Certificates,
    CompletedEnrolment,
)
from services.certifier.batch import Emission, GroupPlanner
from services.certifier.domain import issue_time, reopen_applies
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
from shared.outbox import enqueue, enqueue_many

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
        issued_at = issue_time(enrolment.status, enrolment.completed_at)
        if issued_at is None:
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
            issued_at=issued_at,
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
        event = self._event(uow.tenant_id, event_type, enrolment, certificate, cause, reason)
        if await enqueue(
            uow.connection, event, topic_prefix=self._topic_prefix, key=str(enrolment.id)
        ):
            uow.after_commit(self._on_events_enqueued)
            decision = "issued" if reason is None else "revoked"
            uow.after_commit(CERTIFICATES.labels(decision).inc)

    def _event(
        self,
        tenant_id: UUID,
        event_type: str,
        enrolment: CompletedEnrolment,
        certificate: Certificate,
        cause: CloudEvent[Any],
        reason: str | None = None,
    ) -> CloudEvent[Any]:
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
        return new_event(
            event_type,
            event_id=derived_id(event_type, tenant_id, certificate.id, cause.id),
            source=SOURCE,
            tenant_id=tenant_id,
            time=certificate.issued_at if reason is None else cause.time,
            org_unit_id=enrolment.org_unit_id,
            traceparent=cause.traceparent,
            data=data,
        )

    # The group path (the consumer pipeline's batch handlers).

    async def on_enrolments_completed(
        self, uow: TenantUnitOfWork, events: Sequence[CloudEvent[Any]]
    ) -> list[str]:
        """Apply a group of one tenant's `enrolment.completed` events, in order, in
        the caller's open unit of work (never commits); one outcome per event.

        Equivalent to applying the events one by one with `on_enrolment_completed`
        in that order in the same transaction: same certificates, revocations,
        enrolment statuses and history, outbox rows (in the same order) and
        outcomes. Raises, leaving the rollback to the caller, when an event cannot
        be applied (ReferenceNotFound): the caller then redoes the group one event
        at a time.
        """
        return await self._apply_group(uow, events)

    async def on_enrolments_reopened(
        self, uow: TenantUnitOfWork, events: Sequence[CloudEvent[Any]]
    ) -> list[str]:
        """Apply a group of one tenant's `enrolment.reopened` events, in order, in the
        caller's open unit of work (never commits); one outcome per event.

        Equivalent to applying the events one by one with `on_enrolment_reopened`
        in that order in the same transaction (see `on_enrolments_completed`).
        """
        return await self._apply_group(uow, events)

    async def _apply_group(
        self, uow: TenantUnitOfWork, events: Sequence[CloudEvent[Any]]
    ) -> list[str]:
        store = CertificateGroups(uow.connection)
        enrolment_ids = sorted({event.data.enrolment_id for event in events})
        enrolments = await store.lock_enrolments(enrolment_ids)
        live = await store.live_certificates(sorted(enrolments))
        completions = [e.id for e in events if e.type == "enrolment.completed"]
        planner = GroupPlanner(
            uow.tenant_id, enrolments, await store.issued_for(completions), live, self._new_token
        )
        for event in events:
            planner.apply(event)
        plan = planner.plan
        # Revocations first: the one-live-certificate-per-enrolment index is checked
        # row by row, and a superseded certificate must be gone before its successor.
        await store.revoke([(r.certificate.id, r.reason, r.at) for r in plan.revocations])
        stored = await store.insert(plan.issues)
        await store.certify(plan.certifications)
        revoked = {r.certificate.id: r.certificate for r in plan.revocations}
        await self._enqueue_group(uow, store, plan.emissions, {**revoked, **stored})
        return plan.outcomes

    async def _enqueue_group(
        self,
        uow: TenantUnitOfWork,
        store: CertificateGroups,
        emissions: list[Emission],
        certificates: dict[UUID, Certificate],
    ) -> None:
        events = []
        for emission in emissions:
            certificate = certificates[emission.certificate_id]
            if emission.reason is not None:
                certificate = Certificate(
                    certificate.id,
                    certificate.issued_at,
                    certificate.expires_at,
                    certificate.public_token,
                    "revoked",
                )
            event = self._event(
                uow.tenant_id,
                emission.event_type,
                emission.enrolment,
                certificate,
                emission.cause,
                emission.reason,
            )
            events.append((event, emission))
        written = await enqueue_many(
            uow.connection,
            [(event, str(emission.enrolment.id)) for event, emission in events],
            topic_prefix=self._topic_prefix,
        )
        if not written:
            return
        uow.after_commit(self._on_events_enqueued)
        for decision, event_type in (
            ("issued", "certificate.issued"),
            ("revoked", "certificate.revoked"),
        ):
            count = sum(
                1 for event, _ in events if event.type == event_type and event.id in written
            )
            if count:
                uow.after_commit(partial(CERTIFICATES.labels(decision).inc, count))


async def _enrolment(store: Certificates, enrolment_id: UUID) -> CompletedEnrolment:
    enrolment = await store.lock_enrolment(enrolment_id)
    if enrolment is None:
        raise ReferenceNotFound(f"enrolment {enrolment_id} not found")
    return enrolment


def _cause(event: CloudEvent[Any]) -> tuple[UUID, str, Any]:
    return (event.id, event.type, event.time)
