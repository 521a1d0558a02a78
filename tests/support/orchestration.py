"""The orchestrator run in the test's event loop (with tests/support/fleet.py), and
readers of what it leaves in the database and on the broker."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.orchestrator import service
from shared.db.uow import TenantUnitOfWork
from shared.fleet import ORCHESTRATOR
from shared.messaging.clients import connected
from shared.messaging.topics import topic_for
from shared.settings import Settings
from tests.support.fleet import configure, create_fleet_topics, running
from tests.support.kafka import eventually


@contextlib.asynccontextmanager
async def orchestrator(settings: Settings, engine_port: int) -> AsyncIterator[Settings]:
    """Run the orchestrator process's wiring in this event loop until the block ends."""
    await create_fleet_topics(settings)
    configured = configure(settings, engine_port=engine_port)
    async with running(service.run, configured):
        yield configured


def orchestrator_group(settings: Settings) -> str:
    """The orchestrator's consumer group in the test's environment."""
    return ORCHESTRATOR.group_id(settings.topic_prefix)


def consumed_topics(settings: Settings) -> list[str]:
    """The topics the orchestrator consumes."""
    return [topic_for(t, settings.topic_prefix) for t in ORCHESTRATOR.consumes]


async def assignments(
    pool: asyncpg.Pool, tenant: uuid.UUID, enrolment: uuid.UUID
) -> dict[str, asyncpg.Record]:
    """An enrolment's assignment rows by requirement key."""
    async with TenantUnitOfWork(pool, tenant) as uow:
        rows = await uow.connection.fetch(
            "SELECT a.*, r.key FROM assignments a JOIN programme_requirements r"
            " ON r.tenant_id = a.tenant_id AND r.id = a.requirement_id"
            " WHERE a.enrolment_id = $1",
            enrolment,
        )
    return {r["key"]: r for r in rows}


async def assignments_created(
    pool: asyncpg.Pool, tenant: uuid.UUID, enrolment: uuid.UUID, keys: set[str]
) -> dict[str, asyncpg.Record]:
    """Wait until the delivery engine created exactly these requirements' assignments."""

    async def created() -> bool:
        rows = await assignments(pool, tenant, enrolment)
        return set(rows) == keys and all(r["status"] == "created" for r in rows.values())

    await eventually(created)
    return await assignments(pool, tenant, enrolment)


async def enrolment_status(pool: asyncpg.Pool, tenant: uuid.UUID, enrolment: uuid.UUID) -> Any:
    """The enrolment's status (None until the orchestrator applied it)."""
    async with TenantUnitOfWork(pool, tenant) as uow:
        return await uow.connection.fetchval(
            "SELECT status FROM enrolments WHERE id = $1", enrolment
        )


async def reaches_status(
    pool: asyncpg.Pool, tenant: uuid.UUID, enrolment: uuid.UUID, status: str
) -> None:
    """Wait until the enrolment has `status`."""

    async def reached() -> bool:
        return bool(await enrolment_status(pool, tenant, enrolment) == status)

    await eventually(reached)


async def all_records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` as of now, read without a consumer group."""
    async with (
        connected(
            AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        ) as consumer,
        connected(AIOKafkaAdminClient(bootstrap_servers=bootstrap)) as admin,
    ):
        if topic not in await admin.list_topics():
            return []  # (describing it would make the broker create it)
        [described] = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for fetched in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(fetched)
        return records


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets by (topic, partition)."""
    async with connected(AIOKafkaAdminClient(bootstrap_servers=bootstrap)) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
