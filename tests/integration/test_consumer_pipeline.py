"""A round trip through the real broker: CloudEvents consumed by a faststream
subscriber, validated, applied inside a tenant unit of work exactly once;
anything that can never be processed goes to `<topic>.dlq` with its context."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent, SubmissionCreated
from shared.messaging import dead_letters as dl
from shared.messaging.broker import create_broker, subscribe_consumer
from shared.messaging.consumer import EventConsumer
from shared.messaging.dead_letters import DeadLetterPublisher
from shared.messaging.producer import KafkaSink
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.support.events import submission_created
from tests.support.kafka import consume, create_topics, eventually, produce
from tests.support.seed import seed_programme


async def record_submission(uow: TenantUnitOfWork, event: CloudEvent[Any]) -> str:
    """A handler that writes a tenant row: only possible under the event's tenant."""
    data: SubmissionCreated = event.data
    await uow.connection.execute(
        "INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,"
        " submitted_at, event_id) VALUES (app_current_tenant(), $1, $2, $3, $4, $5, $6)",
        data.submission_id,
        data.assignment_id,
        data.user_id,
        data.evaluation_id,
        data.submitted_at,
        event.id,
    )
    return "applied"


def submission_event(tenant_id: uuid.UUID) -> CloudEvent[Any]:
    return submission_created(
        tenant_id,
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        evaluation_id=uuid.uuid4(),
        submitted_at=datetime.now(UTC),
        score=91.5,
    )


@pytest.fixture
async def running_consumer(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[str]:
    topic = topic_for("submission.created", settings.topic_prefix)
    await create_topics(settings.kafka_bootstrap_servers, [topic, dead_letter_topic(topic)])
    sink = KafkaSink(settings.kafka_bootstrap_servers, client_id="test")
    await sink.start()
    group = f"{settings.topic_prefix}test-group"
    consumer = EventConsumer(
        name="test",
        event_type="submission.created",
        pool=pool,
        dead_letters=DeadLetterPublisher(sink, group),
        handler=record_submission,
        max_event_bytes=settings.max_event_bytes,
    )
    broker = create_broker(settings, client_id="test")
    subscribe_consumer(broker, consumer, topic=topic, group_id=group)
    await broker.start()
    try:
        yield topic
    finally:
        await broker.stop()
        await sink.stop()


async def _submissions(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> list[asyncpg.Record]:
    async with TenantUnitOfWork(pool, tenant_id) as uow:
        return await uow.connection.fetch("SELECT * FROM submissions ORDER BY received_at")


async def test_valid_events_apply_once_and_poison_goes_to_the_dlq(
    settings: Settings, pool: asyncpg.Pool, running_consumer: str
) -> None:
    topic = running_consumer
    tenant = (await seed_programme(pool)).tenant_id
    first, second = submission_event(tenant), submission_event(tenant)
    unknown_tenant = submission_event(uuid.uuid4())
    poison = [b"\xffnot json", b'{"hello": "world"}', unknown_tenant.to_bytes()]
    key = b"same-partition"  # everything behind the poison must still flow
    await produce(settings.kafka_bootstrap_servers, topic, [first.to_bytes()], key=key)
    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        poison,
        key=key,
        headers=[("traceparent", b"\xff\xfe not utf-8")],
    )
    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        [first.to_bytes(), second.to_bytes(), first.to_bytes()],
        key=key,
    )

    async def both_applied() -> bool:
        return len(await _submissions(pool, tenant)) == 2

    await eventually(both_applied)
    rows = await _submissions(pool, tenant)
    assert {r["event_id"] for r in rows} == {first.id, second.id}
    async with TenantUnitOfWork(pool, tenant) as uow:
        claimed = await uow.connection.fetch("SELECT event_id FROM inbox WHERE consumer = 'test'")
    assert {r["event_id"] for r in claimed} == {first.id, second.id}

    letters = await consume(settings.kafka_bootstrap_servers, dead_letter_topic(topic), 3)
    by_value = {r.value: r for r in letters}
    assert set(by_value) == set(poison)
    expected_classes = {
        poison[0]: "InvalidJson",
        poison[1]: "NotACloudEvent",
        poison[2]: "UnknownTenant",
    }
    for value, record in by_value.items():
        headers = dict(record.headers)
        assert record.key == key
        assert headers["traceparent"] == b"\xff\xfe not utf-8"  # original bytes kept
        assert headers[dl.ERROR_CLASS].decode() == expected_classes[value]
        assert headers[dl.ERROR_MESSAGE]
        assert headers[dl.SOURCE_TOPIC].decode() == topic
        assert int(headers[dl.SOURCE_PARTITION]) in range(3)
        assert int(headers[dl.SOURCE_OFFSET]) in (1, 2, 3)
        assert headers[dl.CONSUMER_GROUP].decode() == f"{settings.topic_prefix}test-group"
    assert json.loads(poison[1]) == {"hello": "world"}
