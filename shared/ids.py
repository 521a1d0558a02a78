"""Deterministic identifiers: the same facts always yield the same ids, so a
replay re-derives (and de-duplicates on) the events and keys it made before."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c2d7e-5b1a-4c53-9a4e-2d0e8f3b7c11")


def derived_id(*parts: object) -> UUID:
    """A UUIDv5 of the parts, in this project's namespace."""
    return uuid5(NAMESPACE, "|".join(str(part) for part in parts))


def assignment_idempotency_key(
    tenant_id: UUID, enrolment_id: UUID, requirement_id: UUID, user_id: UUID
) -> str:
    """The delivery engine's Idempotency-Key for one (enrolment, requirement, user)."""
    return (
        f"programmes-{derived_id('assignment', tenant_id, enrolment_id, requirement_id, user_id)}"
    )
