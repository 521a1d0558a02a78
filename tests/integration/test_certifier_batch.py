"""The certifier's group path (batch handlers) against its per-message path, on the
real database: the same events, with redeliveries, stale completions, reopenings
and superseding completions, end in the same state either way."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.certifier.handlers import Certifier
from shared.db.pool import create_pool
from shared.db.queries import messaging
from shared.db.uow import TenantUnitOfWork
from shared.errors import ReferenceNotFound
from shared.events import CloudEvent, EnrolmentCompleted, EnrolmentReopened, new_event
from shared.settings import Settings

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
ENROLMENTS = 2
CONSUMER = "certifier-test"


@dataclass(frozen=True)
class World:
    """Ids shared by both databases, so that derived ids agree."""

    tenant_id: uuid.UUID
    programme_id: uuid.UUID
    enrolments: tuple[uuid.UUID, ...]
    users: tuple[uuid.UUID, ...]


def new_world() -> World:
    return World(
        uuid.uuid4(),
        uuid.uuid4(),
        tuple(uuid.uuid4() for _ in range(ENROLMENTS)),
        tuple(uuid.uuid4() for _ in range(ENROLMENTS)),
    )


async def seed(pool: asyncpg.Pool, world: World) -> None:
    async with TenantUnitOfWork(pool, world.tenant_id, actor_role="admin") as uow:
        conn = uow.connection
        await conn.execute("INSERT INTO tenants (id) VALUES (app_current_tenant())")
        await conn.execute(
            "INSERT INTO programmes (tenant_id, id, key, created_by, updated_by)"
            " VALUES (app_current_tenant(), $1, 'p', 'test', 'test')",
            world.programme_id,
        )
        await conn.execute(
            "INSERT INTO programme_versions (tenant_id, programme_id, version, name,"
            " validity_period, definition, definition_hash, published_at, published_by)"
            " VALUES (app_current_tenant(), $1, 1, 'P', interval 'P1Y', '{}', 'h', $2, 'test')",
            world.programme_id,
            T0 - timedelta(days=30),
        )
        for i, (enrolment, user) in enumerate(zip(world.enrolments, world.users, strict=True)):
            await conn.execute(
                "INSERT INTO enrolments (tenant_id, id, user_id, org_unit_id, programme_id,"
                " programme_version, snapshot, user_display_name, enrolled_at,"
                " created_by_event_id)"
                " VALUES (app_current_tenant(), $1, $2, $3, $4, 1, '{}', $5, $6, $1)",
                enrolment,
                user,
                None if i == 0 else uuid.uuid5(world.tenant_id, "org"),
                world.programme_id,
                None if i == 1 else f"Learner {i}",
                T0,
            )
        await uow.commit()


# What the orchestrator does before a group: complete an enrolment at a minute (it
# announces enrolment.completed), reopen it (enrolment.reopened) or cancel it.
Mutation = tuple[int, str, int]
# One group: the orchestrator's changes, redeliveries of earlier events (indices
# into every event so far: the very same events, now stale or duplicate), and the
# seed of the order they all arrive in.
Round = tuple[tuple[Mutation, ...], tuple[int, ...], int]


@dataclass(frozen=True)
class EventSpec:
    kind: str  # completed | reopened
    enrolment: int
    minute: int  # completed_at of a completion


def completed_at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


async def mutate(pool: asyncpg.Pool, world: World, mutations: tuple[Mutation, ...]) -> None:
    async with TenantUnitOfWork(pool, world.tenant_id) as uow:
        for index, action, minute in mutations:
            status = {"complete": "completed", "reopen": "in_progress", "cancel": "cancelled"}
            await uow.connection.execute(
                "UPDATE enrolments SET status = $2,"
                " completed_at = CASE WHEN $2 = 'completed' THEN $3 ELSE completed_at END"
                " WHERE id = $1",
                world.enrolments[index],
                status[action],
                completed_at(minute),
            )
        await uow.commit()


def event_of(world: World, spec: EventSpec, number: int) -> CloudEvent[Any]:
    enrolment = world.enrolments[spec.enrolment]
    event_id = uuid.uuid5(world.tenant_id, f"event-{number}")
    if spec.kind == "completed":
        return new_event(
            "enrolment.completed",
            event_id=event_id,
            source="/programmes/orchestrator",
            tenant_id=world.tenant_id,
            time=completed_at(spec.minute),
            traceparent=f"00-{event_id.hex}-{event_id.hex[:16]}-01",
            data=EnrolmentCompleted(
                enrolment_id=enrolment,
                user_id=world.users[spec.enrolment],
                program_id=world.programme_id,
                program_version=1,
                completed_at=completed_at(spec.minute),
                evidence=[],
            ),
        )
    return new_event(
        "enrolment.reopened",
        event_id=event_id,
        source="/programmes/orchestrator",
        tenant_id=world.tenant_id,
        time=T0 + timedelta(hours=1, minutes=number),
        data=EnrolmentReopened(
            enrolment_id=enrolment,
            requirement_id=uuid.uuid5(world.tenant_id, "requirement"),
            submission_id=uuid.uuid5(world.tenant_id, f"submission-{number}"),
            score_version=2,
            reason=f"requirement theory taken back ({number})",
        ),
    )


def certifier(world: World) -> Certifier:
    """Tokens are globally unique: per tenant, numbered in order of issue (so both
    paths must issue in the same order to agree)."""
    tokens = itertools.count()
    return Certifier(
        "", "https://verify.example", new_token=lambda: f"{world.tenant_id.hex}{next(tokens):06d}"
    )


async def claimed(uow: TenantUnitOfWork, event: CloudEvent[Any]) -> bool:
    return bool(
        await messaging.claim_event(
            uow.connection, consumer=CONSUMER, event_id=event.id, event_type=event.type
        )
    )


async def one_by_one(
    pool: asyncpg.Pool,
    world: World,
    handler: Certifier,
    events: list[CloudEvent[Any]],
    inbox: bool,
) -> list[str]:
    outcomes = []
    for event in events:
        async with TenantUnitOfWork(pool, world.tenant_id) as uow:
            if inbox and not await claimed(uow, event):
                outcomes.append("duplicate")
                continue
            apply = (
                handler.on_enrolment_completed
                if event.type == "enrolment.completed"
                else handler.on_enrolment_reopened
            )
            outcomes.append(await apply(uow, event))
            await uow.commit()
    return outcomes


async def as_group(
    pool: asyncpg.Pool,
    world: World,
    handler: Certifier,
    events: list[CloudEvent[Any]],
    inbox: bool,
) -> list[str]:
    async with TenantUnitOfWork(pool, world.tenant_id) as uow:
        fresh = [not inbox or await claimed(uow, e) for e in events]
        group = [e for e, new in zip(events, fresh, strict=True) if new]
        applied = iter(await handler.on_enrolments_completed(uow, group) if group else [])
        await uow.commit()
    return [next(applied) if new else "duplicate" for new in fresh]


async def state(pool: asyncpg.Pool, world: World) -> dict[str, Any]:
    queries = {
        "certificates": "SELECT id, enrolment_id, user_id, org_unit_id, programme_id,"
        " programme_version, status, issued_at, expires_at, public_token, holder_display_name,"
        " completion_event_id, revoked_at, revoke_reason, expired_at, renewal_opens_at"
        " FROM certificates ORDER BY id",
        "enrolments": "SELECT id, status, completed_at, certified_at FROM enrolments ORDER BY id",
        "history": "SELECT enrolment_id, seq, status, previous_status, reason, requirement_id,"
        " event_id, event_type, decided_at FROM enrolment_history ORDER BY enrolment_id, seq",
        "outbox": "SELECT topic, message_key, event_id, event FROM outbox ORDER BY id",
        "inbox": "SELECT consumer, event_id, event_type FROM inbox ORDER BY event_id",
    }
    async with TenantUnitOfWork(pool, world.tenant_id) as uow:
        return {
            name: [dict(r) for r in await uow.connection.fetch(query)]
            for name, query in queries.items()
        }


def announced(mutations: tuple[Mutation, ...]) -> list[EventSpec]:
    """The events the orchestrator sends for its changes."""
    kinds = {"complete": "completed", "reopen": "reopened"}
    return [EventSpec(kinds[a], i, m) for i, a, m in mutations if a in kinds]


async def run_scenario(
    settings_: Settings, twin: Settings, rounds: list[Round], inbox: bool
) -> None:
    single, grouped = await create_pool(settings_), await create_pool(twin)
    try:
        world = new_world()
        await seed(single, world)
        await seed(grouped, world)
        one, group = certifier(world), certifier(world)
        events: list[CloudEvent[Any]] = []
        for mutations, redeliveries, order in rounds:
            await mutate(single, world, mutations)
            await mutate(grouped, world, mutations)
            new = [
                event_of(world, spec, len(events) + n)
                for n, spec in enumerate(announced(mutations))
            ]
            batch = new + [events[i % len(events)] for i in redeliveries if events]
            random.Random(order).shuffle(batch)
            events += new
            expected = await one_by_one(single, world, one, batch, inbox)
            assert await as_group(grouped, world, group, batch, inbox) == expected
            assert await state(grouped, world) == await state(single, world)
    finally:
        await single.close()
        await grouped.close()


mutations_strategy = st.lists(
    st.tuples(
        st.integers(0, ENROLMENTS - 1),
        st.sampled_from(["complete", "complete", "reopen", "cancel"]),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=4,
).map(tuple)
rounds_strategy = st.lists(
    st.tuples(
        mutations_strategy,
        st.lists(st.integers(0, 50), max_size=6).map(tuple),
        st.integers(0, 2**32),
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rounds=rounds_strategy, inbox=st.booleans())
def test_a_group_ends_as_its_events_applied_one_by_one(
    settings: Settings, twin_settings: Settings, rounds: list[Round], inbox: bool
) -> None:
    asyncio.run(run_scenario(settings, twin_settings, rounds, inbox))


async def test_a_group_naming_an_unknown_enrolment_raises_for_the_pipeline_to_split_it(
    pool: asyncpg.Pool,
) -> None:
    world = new_world()
    await seed(pool, world)
    await mutate(pool, world, ((0, "complete", 1),))
    good = event_of(world, EventSpec("completed", 0, 1), 0)
    stranger = new_world()
    bad = event_of(stranger, EventSpec("completed", 0, 1), 1).model_copy(
        update={"tenantid": world.tenant_id}
    )
    with pytest.raises(ReferenceNotFound):
        async with TenantUnitOfWork(pool, world.tenant_id) as uow:
            await certifier(world).on_enrolments_completed(uow, [good, bad])
    assert (await state(pool, world))["certificates"] == []


async def test_a_large_group_takes_a_fixed_number_of_statements(pool: asyncpg.Pool) -> None:
    world = new_world()
    await seed(pool, world)
    # Many enrolments completed at once, each with its completion event.
    async with TenantUnitOfWork(pool, world.tenant_id) as uow:
        enrolments = await uow.connection.fetch(
            "INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version,"
            " status, snapshot, enrolled_at, completed_at, created_by_event_id)"
            " SELECT app_current_tenant(), gen_random_uuid(), gen_random_uuid(), $1, 1,"
            " 'completed', '{}', $2, $2, gen_random_uuid() FROM generate_series(1, 300)"
            " RETURNING id, user_id",
            world.programme_id,
            T0,
        )
        await uow.commit()
    events = [
        new_event(
            "enrolment.completed",
            event_id=uuid.uuid4(),
            source="/programmes/orchestrator",
            tenant_id=world.tenant_id,
            time=T0,
            data=EnrolmentCompleted(
                enrolment_id=row["id"],
                user_id=row["user_id"],
                program_id=world.programme_id,
                program_version=1,
                completed_at=T0,
                evidence=[],
            ),
        )
        for row in enrolments
    ]
    statements: list[str] = []

    def log(record: LoggedQuery) -> None:
        # not asyncpg's own type introspection (with jit off around it)
        if "typeinfo" not in record.query and "'jit'" not in record.query:
            statements.append(record.query)

    async with TenantUnitOfWork(pool, world.tenant_id) as uow:
        uow.connection.add_query_logger(log)
        outcomes = await certifier(world).on_enrolments_completed(uow, events)
        uow.connection.remove_query_logger(log)
        await uow.commit()
    assert outcomes == ["issued"] * 300
    # enrolments, live certificates, issued completions, insert, certify, outbox
    assert len(statements) == 6, statements
    after = await state(pool, world)
    assert len(after["certificates"]) == len(after["history"]) == len(after["outbox"]) == 300
