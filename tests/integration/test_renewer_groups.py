"""The renewer's group path (`Renewer.settle_many`, what a pass runs) against its
one-certificate path (`Renewer.settle`), on the real database: whatever the
certificates' states, both end in the same rows, history and outbox."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.renewer.handlers import Renewer
from services.renewer.renewer import PassResult, run_pass
from services.renewer.service import run_once
from shared.db.pool import create_pool
from shared.db.uow import TenantUnitOfWork
from shared.fleet import RENEWER
from shared.messaging.topics import topic_for
from shared.settings import Settings
from tests.support.certificates import seed_many_certified
from tests.support.kafka import consume, create_topics
from tests.support.programmes import publish_sample

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Spec:
    """One certificate and its enrolment."""

    issued_days_ago: int  # P1Y validity, P30D window: > 335 in the window, > 365 expired
    status: str  # active | expired | revoked
    renewal_requested: bool
    enrolment_status: str
    archived: bool  # of the second programme, or the first
    display_name: str | None


specs = st.lists(
    st.builds(
        Spec,
        st.sampled_from([100, 336, 340, 364, 366, 400]),
        st.sampled_from(["active", "active", "active", "expired", "revoked"]),
        st.sampled_from([False, False, True]),
        st.sampled_from(["certified", "certified", "completed", "in_progress", "cancelled"]),
        st.sampled_from([False, False, True]),
        st.sampled_from([None, "Ada Lovelace", "", "x" * 300]),
    ),
    min_size=1,
    max_size=12,
)


@dataclass(frozen=True)
class World:
    tenant_id: uuid.UUID
    programmes: tuple[uuid.UUID, uuid.UUID]  # active, archived
    certificates: tuple[uuid.UUID, ...]
    enrolments: tuple[uuid.UUID, ...]


def new_world(count: int) -> World:
    return World(
        uuid.uuid4(),
        (uuid.uuid4(), uuid.uuid4()),
        tuple(uuid.uuid4() for _ in range(count)),
        tuple(uuid.uuid4() for _ in range(count)),
    )


async def seed(pool: asyncpg.Pool, world: World, scenario: list[Spec]) -> None:
    async with TenantUnitOfWork(pool, world.tenant_id, actor_role="admin") as uow:
        conn = uow.connection
        await conn.execute("INSERT INTO tenants (id) VALUES (app_current_tenant())")
        for key, (programme, status) in enumerate(
            zip(world.programmes, ("active", "archived"), strict=True)
        ):
            await conn.execute(
                "INSERT INTO programmes (tenant_id, id, key, status, archived_at, created_by,"
                " updated_by) VALUES (app_current_tenant(), $1, $2, $3,"
                " CASE WHEN $3 = 'archived' THEN now() END, 'test', 'test')",
                programme,
                f"p{key}",
                status,
            )
            await conn.execute(
                "INSERT INTO programme_versions (tenant_id, programme_id, version, name,"
                " validity_period, renewal_window, definition, definition_hash, published_at,"
                " published_by) VALUES (app_current_tenant(), $1, 1, 'P', interval 'P1Y',"
                " interval 'P30D', '{}', 'h', $2, 'test')",
                programme,
                NOW - timedelta(days=800),
            )
        for i, spec in enumerate(scenario):
            await seed_certificate(conn, world, spec, i)
        await uow.commit()


async def seed_certificate(conn: Any, world: World, spec: Spec, i: int) -> None:
    programme = world.programmes[spec.archived]
    issued = NOW - timedelta(days=spec.issued_days_ago)
    await conn.execute(
        "INSERT INTO enrolments (tenant_id, id, user_id, org_unit_id, programme_id,"
        " programme_version, status, snapshot, user_display_name, enrolled_at, completed_at,"
        " certified_at, created_by_event_id) VALUES (app_current_tenant(), $1, $2, $3, $4, 1,"
        " $5, '{}', $6, $7, $7, $7, $1)",
        world.enrolments[i],
        uuid.uuid5(world.tenant_id, f"user{i}"),
        None if i % 2 else uuid.uuid5(world.tenant_id, "org"),
        programme,
        spec.enrolment_status,
        spec.display_name,
        issued,
    )
    await conn.execute(
        "INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, programme_id,"
        " programme_version, status, issued_at, expires_at, public_token, completion_event_id,"
        " revoked_at, revoke_reason, expired_at, renewal_enrolment_id, renewal_requested_at)"
        " VALUES (app_current_tenant(), $1, $2, $3, $4, 1, $5, $6::timestamptz,"
        " $6::timestamptz + interval 'P1Y', $7, $1,"
        " CASE WHEN $5 = 'revoked' THEN $6::timestamptz END,"
        " CASE WHEN $5 = 'revoked' THEN 'r' END,"
        " CASE WHEN $5 = 'expired' THEN $6::timestamptz + interval 'P1Y' END,"
        " CASE WHEN $8 THEN $9::uuid END, CASE WHEN $8 THEN $6::timestamptz END)",
        world.certificates[i],
        world.enrolments[i],
        uuid.uuid5(world.tenant_id, f"user{i}"),
        programme,
        spec.status,
        issued,
        f"{world.tenant_id.hex}{i:06d}",
        spec.renewal_requested,
        uuid.uuid5(world.tenant_id, f"renewal{i}"),
    )


async def state(pool: asyncpg.Pool, world: World) -> dict[str, Any]:
    queries = {
        "certificates": "SELECT id, status, expired_at, renewal_enrolment_id,"
        " renewal_requested_at FROM certificates ORDER BY id",
        "enrolments": "SELECT id, status FROM enrolments ORDER BY id",
        "history": "SELECT enrolment_id, seq, status, previous_status, reason, event_id,"
        " event_type, decided_at FROM enrolment_history ORDER BY enrolment_id, seq",
        "outbox": "SELECT topic, message_key, event_id, event FROM outbox ORDER BY id",
    }
    async with TenantUnitOfWork(pool, world.tenant_id) as uow:
        return {
            name: [dict(r) for r in await uow.connection.fetch(query)]
            for name, query in queries.items()
        }


async def run_scenario(
    settings_: Settings, twin: Settings, scenario: list[Spec], order: int
) -> None:
    single, grouped = await create_pool(settings_), await create_pool(twin)
    try:
        world = new_world(len(scenario))
        await seed(single, world, scenario)
        await seed(grouped, world, scenario)
        # and one not of this tenant, and one named twice
        ids = [*world.certificates, uuid.uuid4(), world.certificates[0]]
        random.Random(order).shuffle(ids)
        renewer = Renewer("p.", "https://verify.example")
        expected = []
        for certificate in ids:
            async with TenantUnitOfWork(single, world.tenant_id) as uow:
                expected.append(await renewer.settle(uow, certificate, NOW))
                await uow.commit()
        async with TenantUnitOfWork(grouped, world.tenant_id) as uow:
            assert await renewer.settle_many(uow, ids, NOW) == expected
            await uow.commit()
        assert await state(grouped, world) == await state(single, world)
    finally:
        await single.close()
        await grouped.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=specs, order=st.integers(0, 2**32))
def test_a_group_settles_as_its_certificates_one_by_one(
    settings: Settings, twin_settings: Settings, scenario: list[Spec], order: int
) -> None:
    asyncio.run(run_scenario(settings, twin_settings, scenario, order))


async def test_a_group_that_fails_is_settled_one_by_one(
    settings: Settings, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = await publish_sample(pool)
    await seed_many_certified(
        pool, sample, 30, first_issued_at=NOW - timedelta(days=340), spacing=timedelta(hours=1)
    )
    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        bad = await uow.connection.fetchval("SELECT id FROM certificates ORDER BY id LIMIT 1")
    settle, settle_many = Renewer.settle, Renewer.settle_many

    async def failing_settle_many(self: Renewer, uow: Any, ids: Any, now: datetime) -> Any:
        if bad in ids:
            raise RuntimeError("a certificate that cannot be settled")
        return await settle_many(self, uow, ids, now)

    async def failing_settle(self: Renewer, uow: Any, certificate: Any, now: datetime) -> Any:
        if certificate == bad:
            raise RuntimeError("a certificate that cannot be settled")
        return await settle(self, uow, certificate, now)

    monkeypatch.setattr(Renewer, "settle_many", failing_settle_many)
    monkeypatch.setattr(Renewer, "settle", failing_settle)
    result = await run_pass(pool, settings, NOW, batch_size=12, group_size=5)
    assert result == PassResult(renewals_opened=29, failed=1)
    monkeypatch.undo()
    assert await run_pass(pool, settings, NOW) == PassResult(renewals_opened=1)


async def test_the_command_publishes_everything_the_pass_wrote(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    await seed_many_certified(
        pool, sample, 40, first_issued_at=NOW - timedelta(days=340), spacing=timedelta(hours=1)
    )
    await create_topics(
        settings.kafka_bootstrap_servers,
        [topic_for(t, settings.topic_prefix) for t in RENEWER.produces],
    )

    assert await run_once(settings, NOW) == PassResult(renewals_opened=40)

    async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
        pending = await uow.connection.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
    assert pending == 0
    topic = topic_for("enrolment.created", settings.topic_prefix)
    records = await consume(settings.kafka_bootstrap_servers, topic, 40)
    assert len({r.value for r in records}) == 40
