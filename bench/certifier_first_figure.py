"""A first figure for the certifier: certificates issued per second by one process.

Seeds completed enrolments, publishes one `enrolment.completed` per enrolment, starts
one certifier (in this process) and times how long its group takes to commit them.

    .venv/bin/python -m bench.certifier_first_figure --certificates 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from bench.orchestrator_first_figure import _database
from services.certifier import service
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.events import EnrolmentCompleted, new_event
from shared.settings import Settings
from tests.support.fleet import configure, create_fleet_topics, running
from tests.support.kafka import drained
from tests.support.programmes import publish_sample
from tests.support.services import with_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def main(count: int) -> dict[str, float]:
    import devstack

    env = devstack.up().env()
    database = await _database(env)
    settings = Settings(
        database_url=with_database(env["DATABASE_URL"], database),
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        log_level="WARNING",
    )
    pool = await create_pool(settings)
    sample = await publish_sample(pool, prerequisites=False)
    enrolments = [(uuid.uuid4(), uuid.uuid4(), T0 + timedelta(seconds=i)) for i in range(count)]
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        snapshot = await uow.connection.fetchval("SELECT definition FROM programme_versions")
        await uow.connection.executemany(
            "INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version,"
            " status, snapshot, enrolled_at, completed_at, created_by_event_id)"
            " VALUES ($1, $2, $3, $4, 1, 'completed', $5, $6, $6, $2)",
            [
                (sample.tenant_id, e, u, sample.programme_id, snapshot, at)
                for e, u, at in enrolments
            ],
        )
        await uow.commit()
    await create_fleet_topics(settings)
    topic = settings.topic_prefix + "enrolment.completed"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    for enrolment, user, at in enrolments:
        event = new_event(
            "enrolment.completed",
            event_id=uuid.uuid4(),
            source="/bench",
            time=at,
            tenant_id=sample.tenant_id,
            data=EnrolmentCompleted(
                enrolment_id=enrolment,
                user_id=user,
                program_id=sample.programme_id,
                program_version=1,
                completed_at=at,
                evidence=[],
            ),
        )
        await producer.send(topic, event.to_bytes(), key=str(enrolment).encode())
    await producer.stop()
    started = time.perf_counter()
    async with running(service.run, configure(settings, engine_port=1)):
        await drained(
            settings.kafka_bootstrap_servers,
            settings.topic_prefix + "programmes-certifier",
            [topic],
            within=3600,
        )
    elapsed = time.perf_counter() - started
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        issued = await uow.connection.fetchval("SELECT count(*) FROM certificates")
    await pool.close()
    return {
        "certificates": issued,
        "seconds": round(elapsed, 2),
        "certificates_per_s": round(issued / elapsed),
        "cores": os.cpu_count() or 0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certificates", type=int, default=3000)
    print(json.dumps(asyncio.run(main(parser.parse_args().certificates))))
