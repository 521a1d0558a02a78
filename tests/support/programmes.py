"""A tenant with a catalogue and a published programme, through the real
definitions service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.definitions import service as definitions
from services.definitions.model import parse_programme
from shared.db.uow import TenantUnitOfWork


@dataclass(frozen=True)
class Sample:
    """The sample programme: theory (>= 80), hazard (>= 70, after theory), report (pass/fail)."""

    tenant_id: uuid.UUID
    programme_id: uuid.UUID
    version: int
    evaluations: dict[str, uuid.UUID]  # requirement key -> evaluation id


def sample_document(evaluations: dict[str, uuid.UUID], **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "key": "safety-inspector",
        "name": "Certified Safety Inspector 2025",
        "description": "The sample programme of the contract.",
        "validity_period": "P1Y",
        "renewal_window": "P30D",
        "requirements": [
            {
                "key": "theory",
                "name": "Safety Theory",
                "evaluation_id": str(evaluations["theory"]),
                "min_score": 80,
                "mandatory": True,
            },
            {
                "key": "hazard",
                "name": "Hazard Perception Observation",
                "evaluation_id": str(evaluations["hazard"]),
                "min_score": 70,
                "prerequisites": ["theory"],
            },
            {
                "key": "report",
                "name": "Evidence: Incident Investigation Report",
                "evaluation_id": str(evaluations["report"]),
                "min_score": None,
            },
        ],
    }
    document.update(changes)
    return document


async def publish_sample(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID | None = None,
    published_at: datetime | None = None,
    *,
    prerequisites: bool = True,
    **changes: Any,
) -> Sample:
    """Register a tenant and its catalogue, and publish the sample programme."""
    tenant_id = tenant_id or uuid.uuid4()
    evaluations = {key: uuid.uuid4() for key in ("theory", "hazard", "report")}
    kinds = {"theory": "knowledge", "hazard": "observation", "report": "evidence"}
    async with TenantUnitOfWork(pool, tenant_id, actor_role="admin") as uow:
        await definitions.ensure_tenant(uow.connection)
        for key, evaluation_id in evaluations.items():
            await definitions.add_evaluation(uow.connection, evaluation_id, kinds[key], key)
        document = sample_document(evaluations, **changes)
        if not prerequisites:
            for requirement in document["requirements"]:
                requirement.pop("prerequisites", None)
        spec = parse_programme(document)
        published = await definitions.apply(
            uow.connection, spec, actor="test", now=published_at or datetime(2020, 1, 1, tzinfo=UTC)
        )
        await uow.commit()
    return Sample(tenant_id, published.programme_id, published.version, evaluations)
