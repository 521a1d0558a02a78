"""A first throughput figure for one orchestrator process.

Seeds enrolments whose assignments are already linked, publishes N
`submission.created` events for them, starts one orchestrator (in this process)
and times how long its consumer group takes to commit them all.

    .venv/bin/python -m bench.orchestrator_first_figure --events 5000

Runs against the local stack (`programmes dev up`) in a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

import devstack
from services.orchestrator import service
from services.orchestrator.adapters.ledger import Link
from services.orchestrator.handlers import Orchestrator
from shared.db.migrate import migrate
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.settings import Settings
from tests.support.events import enrolment_created, submission_created
from tests.support.fleet import configure, create_fleet_topics, running
from tests.support.kafka import drained
from tests.support.programmes import publish_sample
from tests.support.services import with_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _database(env: dict[str, str]) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(env["DATABASE_ADMIN_URL"])
    await admin.execute(f'CREATE DATABASE "{name}" OWNER programmes_owner')
    await admin.close()
    migrate(with_database(env["MIGRATIONS_DATABASE_URL"], name))
    return name


Target = tuple[uuid.UUID, tuple[uuid.UUID, uuid.UUID, uuid.UUID]]


async def _seed(pool: asyncpg.Pool, enrolments: int) -> list[Target]:
    """Enrolments with every assignment linked; returns (tenant, assignment facts)."""
    sample = await publish_sample(pool, prerequisites=False)
    orchestrator = Orchestrator()
    targets: list[Target] = []
    for _ in range(enrolments):
        event = enrolment_created(sample.tenant_id, sample.programme_id, enrolled_at=T0)
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            await orchestrator.on_enrolment_created(uow, event)
            rows = await uow.connection.fetch(
                "SELECT requirement_id, user_id, evaluation_id FROM assignments"
                " WHERE enrolment_id = $1",
                event.data.enrolment_id,
            )
            await uow.commit()
        for row in rows:
            assignment_id = uuid.uuid4()
            link = Link(event.data.enrolment_id, row["requirement_id"], row["user_id"])
            async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
                await orchestrator.on_assignment_created(uow, link, assignment_id, T0)
                await uow.commit()
            facts = (assignment_id, row["user_id"], row["evaluation_id"])
            targets.append((sample.tenant_id, facts))
    return targets


async def main(events: int, enrolments: int) -> dict[str, float]:
    env = devstack.up().env()
    database = await _database(env)
    settings = Settings(
        database_url=with_database(env["DATABASE_URL"], database),
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        db_pool_max_size=10,
        log_level="WARNING",
    )
    pool = await create_pool(settings)
    targets = await _seed(pool, enrolments)
    await create_fleet_topics(settings)
    topic = settings.topic_prefix + "submission.created"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    for i in range(events):
        tenant, (assignment, user, evaluation) = targets[i % len(targets)]
        event = submission_created(
            tenant,
            assignment_id=assignment,
            user_id=user,
            evaluation_id=evaluation,
            submitted_at=T0 + timedelta(seconds=i),
            score=float(i % 100),
        )
        await producer.send(topic, event.to_bytes(), key=str(assignment).encode())
    await producer.flush()
    await producer.stop()
    group = settings.topic_prefix + "programmes-orchestrator"
    started = time.perf_counter()
    async with running(service.run, configure(settings, engine_port=1)):
        await drained(settings.kafka_bootstrap_servers, group, [topic], within=3600)
    elapsed = time.perf_counter() - started
    await pool.close()
    return {
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
        "cores": os.cpu_count() or 0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--enrolments", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.enrolments))))
