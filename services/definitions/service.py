"""ProgrammeDefinitionService: publish programme files as immutable versions.

Runs inside a tenant unit of work; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from services.definitions.errors import ProgrammeArchived
from services.definitions.model import DefinitionError, ProgrammeFile
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries
from shared.ids import derived_id

_sql = load_queries(Path(__file__).with_name("sql") / "definitions.sql")


@dataclass(frozen=True)
class Published:
    """What `apply` did."""

    programme_id: UUID
    version: int
    created: bool  # a new programme
    published: bool  # a new version (False: the file was unchanged)


@dataclass(frozen=True)
class TenantSettings:
    """A tenant's privacy rule for holder names, and whether it was just registered."""

    holder_name_rule: str
    created: bool


async def ensure_tenant(conn: Connection) -> None:
    """Register the current tenant (idempotent)."""
    await _sql.ensure_tenant(conn)


async def tenant_known(conn: Connection) -> bool:
    """Whether the current tenant is registered."""
    return bool(await _sql.tenant_known(conn))


async def set_tenant(conn: Connection, holder_name_rule: str | None) -> TenantSettings:
    """Register the current tenant or change its rule (None keeps the current rule)."""
    row = await _sql.set_tenant(conn, holder_name_rule=holder_name_rule)
    return TenantSettings(row["holder_name_rule"], bool(row["created"]))


async def add_evaluation(conn: Connection, evaluation_id: UUID, kind: str, title: str) -> bool:
    """Add an evaluation to the tenant's catalogue; False if it was already there."""
    if not 1 <= len(title) <= 500:
        raise DefinitionError("title: must be 1 to 500 characters")
    return bool(await _sql.add_evaluation(conn, id=evaluation_id, type=kind, title=title))


def snapshot(programme_id: UUID, version: int, spec: ProgrammeFile) -> dict[str, Any]:
    """The frozen definition of a version: what enrolments pin (with requirement ids)."""
    ids = {
        r.key: derived_id("requirement", programme_id, version, r.key) for r in spec.requirements
    }
    content = spec.content()
    for requirement in content["requirements"]:
        requirement["id"] = str(ids[requirement["key"]])
    return {"programme_id": str(programme_id), "version": version, **content}


async def apply(conn: Connection, spec: ProgrammeFile, actor: str, now: datetime) -> Published:
    """Create the programme, or publish a new version if the file changed."""
    await _check_catalogue(conn, spec)
    existing = await _sql.programme_by_key(conn, key=spec.key)
    digest = spec.content_hash()
    if existing is None:
        programme_id = uuid4()
        await _sql.insert_programme(conn, id=programme_id, key=spec.key, actor=actor)
        version, created = 1, True
    else:
        programme_id, created = existing["id"], False
        latest = await _sql.latest_version(conn, programme_id=programme_id)
        if latest is not None and latest["definition_hash"] == digest:
            return Published(programme_id, latest["version"], created=False, published=False)
        if existing["status"] == "archived":
            raise ProgrammeArchived(f"programme {spec.key!r} is archived: it takes no new versions")
        version = 1 if latest is None else latest["version"] + 1
        await _sql.touch_programme(conn, id=programme_id, actor=actor)
    await _insert_version(conn, programme_id, version, spec, digest, actor, now)
    return Published(programme_id, version, created=created, published=True)


async def _check_catalogue(conn: Connection, spec: ProgrammeFile) -> None:
    wanted = [r.evaluation_id for r in spec.requirements]
    known = {row["id"] for row in await fetch_all(_sql.known_evaluations(conn, ids=wanted))}
    for index, requirement in enumerate(spec.requirements):
        if requirement.evaluation_id not in known:
            raise DefinitionError(
                f"requirements[{index}] ({requirement.key}).evaluation_id: evaluation "
                f"{requirement.evaluation_id} is not in this tenant's catalogue"
            )


async def _insert_version(
    conn: Connection,
    programme_id: UUID,
    version: int,
    spec: ProgrammeFile,
    digest: str,
    actor: str,
    now: datetime,
) -> None:
    frozen = snapshot(programme_id, version, spec)
    await _sql.insert_version(
        conn,
        programme_id=programme_id,
        version=version,
        name=spec.name,
        description=spec.description,
        badge_image_url=spec.badge_image_url,
        validity_period=spec.validity_period,
        renewal_window=spec.renewal_window,
        definition=frozen,
        definition_hash=digest,
        published_at=now,
        actor=actor,
    )
    common = {"programme_id": programme_id, "version": version}
    if spec.elective_groups:
        await _sql.insert_groups(
            conn,
            **common,
            keys=[g.key for g in spec.elective_groups],
            names=[g.name for g in spec.elective_groups],
            min_mets=[g.min_met for g in spec.elective_groups],
        )
    ids = {r["key"]: UUID(r["id"]) for r in frozen["requirements"]}
    await _sql.insert_requirements(
        conn,
        **common,
        ids=list(ids.values()),
        keys=[r.key for r in spec.requirements],
        names=[r.name for r in spec.requirements],
        evaluation_ids=[r.evaluation_id for r in spec.requirements],
        min_scores=[r.min_score for r in spec.requirements],
        mandatory=[r.mandatory for r in spec.requirements],
        groups=[r.elective_group for r in spec.requirements],
        orders=list(range(1, len(spec.requirements) + 1)),
    )
    edges = [(ids[r.key], ids[p]) for r in spec.requirements for p in r.prerequisites]
    if edges:
        await _sql.insert_prerequisites(
            conn,
            **common,
            requirement_ids=[e[0] for e in edges],
            prerequisite_ids=[e[1] for e in edges],
        )
