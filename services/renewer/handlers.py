"""The renewer's handler: settle one certificate at `now` — load it, let the rules
decide, save the change with its event in the outbox.

It runs inside the tenant unit of work the pass opened for that certificate (and
never commits it). Both rows are locked, enrolment first, so two passes settling
the same certificate take turns and the second finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from services.renewer import domain
from services.renewer.adapters.certificates import Certificate, CertificateStore, Enrolment
from shared.db.uow import TenantUnitOfWork
from shared.events import CertificateExpired, CloudEvent, EnrolmentCreated, new_event
from shared.links import verification_url
from shared.outbox import enqueue, enqueue_many

SOURCE = "/programmes/renewer"


def _no_op() -> None:
    pass


class Renewer:
    """Opens renewal enrolments and expires certificates, one certificate at a time."""

    def __init__(
        self,
        topic_prefix: str,
        public_base_url: str,
        on_events_enqueued: Callable[[], None] = _no_op,
    ) -> None:
        self._topic_prefix = topic_prefix
        self._public_base_url = public_base_url
        self._on_events_enqueued = on_events_enqueued

    async def settle(
        self, uow: TenantUnitOfWork, certificate_id: UUID, now: datetime
    ) -> domain.Decision:
        """Do what is due for the certificate at `now`; returns what was done."""
        store = CertificateStore(uow.connection)
        locked = await store.lock(certificate_id)
        if locked is None:
            return domain.Decision()  # not this tenant's (the scan and the tenant disagree)
        certificate, enrolment = locked
        decision = domain.decide(certificate.term, now)
        opened = decision.open_renewal and await self._open_renewal(
            uow, store, certificate, enrolment, now
        )
        expired = decision.expire and await self._expire(uow, store, certificate, enrolment, now)
        return domain.Decision(open_renewal=opened, expire=expired)

    async def settle_many(
        self, uow: TenantUnitOfWork, certificate_ids: Sequence[UUID], now: datetime
    ) -> list[domain.Decision]:
        """Do what is due at `now` for each of these certificates of the unit of work's
        tenant; returns what was done to each, in order.

        Equivalent to `settle` for each certificate in turn in the same transaction
        (same rows, history and outbox rows in the same order), with one statement
        per step for the whole group instead of a few per certificate.
        """
        store = CertificateStore(uow.connection)
        locked = {c.id: (c, e) for c, e in await store.lock_many(sorted(set(certificate_ids)))}
        ordered = [locked[i] for i in dict.fromkeys(certificate_ids) if i in locked]
        decided = [(c, e, domain.decide(c.term, now)) for c, e in ordered]
        renewals = {
            c.id: domain.renewal_enrolment_id(uow.tenant_id, e.id)
            for c, e, decision in decided
            if decision.open_renewal
        }
        opened = await store.request_renewals(list(renewals.items()), now)
        expired = await store.expire_certificates(
            [c.id for c, _, decision in decided if decision.expire], now
        )
        events: list[CloudEvent[Any]] = []
        enrolment_changes: list[tuple[Enrolment, CloudEvent[Any]]] = []
        expired_enrolments: set[UUID] = set()
        for certificate, enrolment, _ in decided:
            if certificate.id in opened:
                renewal_id = renewals[certificate.id]
                events.append(_renewal(uow.tenant_id, certificate, enrolment, renewal_id, now))
            if certificate.id in expired:
                event = self._expired(uow.tenant_id, certificate, enrolment)
                if (
                    domain.enrolment_expires(enrolment.status)
                    and enrolment.id not in expired_enrolments
                ):
                    enrolment_changes.append((enrolment, event))
                    expired_enrolments.add(enrolment.id)
                events.append(event)
        await store.expire_enrolments(enrolment_changes)
        keyed = [(event, str(event.data.enrolment_id)) for event in events]
        if await enqueue_many(uow.connection, keyed, topic_prefix=self._topic_prefix):
            uow.after_commit(self._on_events_enqueued)
        done = {
            c.id: domain.Decision(open_renewal=c.id in opened, expire=c.id in expired)
            for c, _, _ in decided
        }
        # A certificate named twice is settled once: the second time finds nothing to do.
        return [done.pop(i, domain.Decision()) for i in certificate_ids]

    async def _open_renewal(
        self,
        uow: TenantUnitOfWork,
        store: CertificateStore,
        certificate: Certificate,
        enrolment: Enrolment,
        now: datetime,
    ) -> bool:
        renewal_id = domain.renewal_enrolment_id(uow.tenant_id, enrolment.id)
        if not await store.request_renewal(certificate.id, renewal_id, now):
            return False
        # The orchestrator takes it from here, as for any enrolment: it pins the
        # version current at `now` and requests new assignments.
        await self._emit(uow, _renewal(uow.tenant_id, certificate, enrolment, renewal_id, now))
        return True

    async def _expire(
        self,
        uow: TenantUnitOfWork,
        store: CertificateStore,
        certificate: Certificate,
        enrolment: Enrolment,
        now: datetime,
    ) -> bool:
        if not await store.expire_certificate(certificate.id, now):
            return False
        event = self._expired(uow.tenant_id, certificate, enrolment)
        if domain.enrolment_expires(enrolment.status):
            await store.expire_enrolment(enrolment, event.id, event.type, event.time)
        await self._emit(uow, event)
        return True

    def _expired(
        self, tenant_id: UUID, certificate: Certificate, enrolment: Enrolment
    ) -> CloudEvent[Any]:
        assert certificate.expires_at is not None  # only a certificate with an expiry expires
        return new_event(
            "certificate.expired",
            event_id=domain.expiry_event_id(tenant_id, certificate.id),
            source=SOURCE,
            tenant_id=tenant_id,
            time=certificate.expires_at,  # the fact: when it stopped being valid
            org_unit_id=enrolment.org_unit_id,
            data=CertificateExpired(
                certificate_id=certificate.id,
                enrolment_id=enrolment.id,
                user_id=certificate.user_id,
                program_id=certificate.programme_id,
                issued_at=certificate.issued_at,
                expires_at=certificate.expires_at,
                status="expired",
                verification_url=verification_url(self._public_base_url, certificate.public_token),
            ),
        )

    async def _emit(self, uow: TenantUnitOfWork, event: CloudEvent[Any]) -> None:
        key = str(event.data.enrolment_id)
        if await enqueue(uow.connection, event, topic_prefix=self._topic_prefix, key=key):
            uow.after_commit(self._on_events_enqueued)


def _renewal(
    tenant_id: UUID,
    certificate: Certificate,
    enrolment: Enrolment,
    renewal_id: UUID,
    now: datetime,
) -> CloudEvent[Any]:
    return new_event(
        "enrolment.created",
        event_id=domain.renewal_event_id(tenant_id, enrolment.id),
        source=SOURCE,
        tenant_id=tenant_id,
        time=now,
        org_unit_id=enrolment.org_unit_id,
        data=EnrolmentCreated(
            enrolment_id=renewal_id,
            user_id=enrolment.user_id,
            program_id=certificate.programme_id,
            enrolled_at=now,
            user_display_name=domain.carried_display_name(enrolment.user_display_name),
            renewal_of_enrolment_id=enrolment.id,
        ),
    )
