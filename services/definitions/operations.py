"""The operator's operations on definitions, one tenant transaction each.

Each opens a tenant unit of work with the operator's role (which the database's
definition policies check), refuses unknown tenants, commits on success and
turns the database's refusals into one-line `DefinitionsError`s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.definitions import programmes, service
from services.definitions.enrolments import Enrolment, EnrolmentRequest, request_enrolment
from services.definitions.errors import ProgrammeInUse, RoleRefused, UnknownTenant
from services.definitions.model import ProgrammeFile
from services.definitions.programmes import ProgrammeSummary, ProgrammeView
from services.definitions.progress import ProgressReport, enrolment_progress
from services.definitions.service import Published, TenantSettings
from shared.db.uow import TenantUnitOfWork


@dataclass(frozen=True)
class Operator:
    """Who acts for which tenant: the role is what the database checks before a
    definition changes; the name is recorded as created_by / published_by."""

    tenant_id: UUID
    role: str | None = None
    actor: str = "unknown"


@contextlib.contextmanager
def _database_refusals(role: str | None) -> Iterator[None]:
    try:
        yield
    except asyncpg.InsufficientPrivilegeError as error:
        # The restrictive definition policies fail a write's WITH CHECK this way.
        if "row-level security" in str(error):
            raise RoleRefused(role) from None
        raise
    except asyncpg.RestrictViolationError as error:
        # The delete guard's own words: "programme X has enrolments: archive it ...".
        raise ProgrammeInUse(str(error).splitlines()[0]) from None


@contextlib.asynccontextmanager
async def _unit(pool: asyncpg.Pool, operator: Operator) -> AsyncIterator[TenantUnitOfWork]:
    with _database_refusals(operator.role):
        async with TenantUnitOfWork(pool, operator.tenant_id, operator.role) as uow:
            if not await service.tenant_known(uow.connection):
                raise UnknownTenant(
                    f"tenant {operator.tenant_id} is not known "
                    "(register it with `programmes tenant set`)"
                )
            yield uow


async def set_tenant(pool: asyncpg.Pool, operator: Operator, rule: str | None) -> TenantSettings:
    """Register the tenant, or change its holder-name rule (None keeps it)."""
    with _database_refusals(operator.role):
        async with TenantUnitOfWork(pool, operator.tenant_id, operator.role) as uow:
            settings = await service.set_tenant(uow.connection, rule)
            await uow.commit()
    return settings


async def add_evaluation(
    pool: asyncpg.Pool, operator: Operator, evaluation_id: UUID, kind: str, title: str
) -> bool:
    """Register an evaluation in the tenant's catalogue; False if it was there."""
    async with _unit(pool, operator) as uow:
        added = await service.add_evaluation(uow.connection, evaluation_id, kind, title)
        await uow.commit()
    return added


async def apply_programme(
    pool: asyncpg.Pool, operator: Operator, spec: ProgrammeFile, now: datetime
) -> Published:
    """Create the programme, or publish a new version when the file changed."""
    async with _unit(pool, operator) as uow:
        published = await service.apply(uow.connection, spec, operator.actor, now)
        await uow.commit()
    return published


async def list_programmes(pool: asyncpg.Pool, operator: Operator) -> list[ProgrammeSummary]:
    """Every programme of the tenant."""
    async with _unit(pool, operator) as uow:
        return await programmes.list_programmes(uow.connection)


async def show_programme(
    pool: asyncpg.Pool, operator: Operator, key: str, version: int | None
) -> ProgrammeView:
    """One version of a programme in full (the latest by default)."""
    async with _unit(pool, operator) as uow:
        return await programmes.show_programme(uow.connection, key, version)


async def archive_programme(
    pool: asyncpg.Pool, operator: Operator, key: str, now: datetime
) -> bool:
    """Archive a programme; False if it already was."""
    async with _unit(pool, operator) as uow:
        archived = await programmes.archive_programme(uow.connection, key, operator.actor, now)
        await uow.commit()
    return archived


async def delete_programme(pool: asyncpg.Pool, operator: Operator, key: str) -> int:
    """Delete a programme that has no enrolments; returns how many versions went."""
    async with _unit(pool, operator) as uow:
        deleted = await programmes.delete_programme(uow.connection, key, operator.role)
        await uow.commit()
    return deleted


async def enrol(
    pool: asyncpg.Pool,
    operator: Operator,
    wanted: Enrolment,
    *,
    now: datetime,
    topic_prefix: str,
) -> EnrolmentRequest:
    """Write `enrolment.created` to the outbox (the caller relays it to Kafka)."""
    async with _unit(pool, operator) as uow:
        request = await request_enrolment(
            uow.connection, operator.tenant_id, wanted, now=now, topic_prefix=topic_prefix
        )
        await uow.commit()
    return request


async def progress(pool: asyncpg.Pool, operator: Operator, enrolment_id: UUID) -> ProgressReport:
    """An enrolment's progress report."""
    async with _unit(pool, operator) as uow:
        return await enrolment_progress(uow.connection, enrolment_id)
