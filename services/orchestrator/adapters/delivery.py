"""The delivery engine's assignment API (CONTRACT.md, section 2), behind a port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import httpx


@dataclass(frozen=True)
class AssignmentCall:
    """Everything one assignment request carries."""

    tenant_id: UUID
    org_unit_id: UUID | None
    user_id: UUID
    evaluation_id: UUID
    enrolment_id: UUID
    requirement_id: UUID
    idempotency_key: str


class DeliveryError(Exception):
    """The engine did not create the assignment this time (retry later)."""


class DeliveryEngine(Protocol):
    """Creates assignments; the same idempotency key always yields the same one."""

    async def create_assignment(self, call: AssignmentCall) -> UUID:
        """The assignment id; raises DeliveryError when it could not be created now."""
        ...


class HttpDeliveryEngine:
    """`POST {base}/api/v1/assignments` with an Idempotency-Key."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def close(self) -> None:
        """Release the connection pool."""
        await self._client.aclose()

    async def create_assignment(self, call: AssignmentCall) -> UUID:
        """Request (or re-request: idempotent) the assignment."""
        body = {
            "tenant_id": str(call.tenant_id),
            "org_unit_id": None if call.org_unit_id is None else str(call.org_unit_id),
            "user_id": str(call.user_id),
            "evaluation_id": str(call.evaluation_id),
            "evaluation_version_id": None,
            "metadata": {
                "program_enrolment_id": str(call.enrolment_id),
                "program_requirement_id": str(call.requirement_id),
            },
        }
        headers = {"Idempotency-Key": call.idempotency_key, "X-Tenant-Id": str(call.tenant_id)}
        try:
            response = await self._client.post("/api/v1/assignments", json=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from error
        if response.status_code not in (200, 201):
            raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            return UUID(response.json()["assignment_id"])
        except (ValueError, KeyError, TypeError) as error:
            raise DeliveryError(f"unreadable answer: {response.text[:200]}") from error
