"""Reading and retiring programmes: list, show a version, archive, delete.

Runs inside a tenant unit of work; the caller commits. Writes need an actor
role the database accepts (see the definition_roles migration).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from services.definitions.errors import NotFound, RoleRefused
from shared.db.pool import Connection
from shared.db.queries import fetch_all, load_queries

_sql = load_queries(Path(__file__).with_name("sql") / "programmes.sql")


@dataclass(frozen=True)
class ProgrammeSummary:
    """One line of `programme list`."""

    programme_id: UUID
    key: str
    name: str | None  # of the latest version; None before any was published
    latest_version: int | None
    status: str
    enrolments: int
    published_at: datetime | None


@dataclass(frozen=True)
class RequirementView:
    """A requirement of one version, with its evaluation."""

    key: str
    name: str
    evaluation_id: UUID
    evaluation_type: str
    evaluation_title: str
    min_score: Decimal | None
    mandatory: bool
    elective_group: str | None
    prerequisites: tuple[str, ...]


@dataclass(frozen=True)
class GroupView:
    """An elective group: at least `min_met` of the requirements naming it."""

    key: str
    name: str
    min_met: int


@dataclass(frozen=True)
class VersionView:
    """One published, immutable version."""

    version: int
    name: str
    description: str
    badge_image_url: str | None
    validity_period: str | None
    renewal_window: str | None
    published_at: datetime
    published_by: str
    definition_hash: str
    requirements: tuple[RequirementView, ...]
    elective_groups: tuple[GroupView, ...]


@dataclass(frozen=True)
class ProgrammeView:
    """`programme show`: the programme, its version history and one version in full."""

    programme_id: UUID
    key: str
    status: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    archived_at: datetime | None
    enrolments: int
    versions: tuple[int, ...]
    version: VersionView


async def list_programmes(conn: Connection) -> list[ProgrammeSummary]:
    """Every programme of the tenant, by key."""
    return [
        ProgrammeSummary(
            programme_id=row["id"],
            key=row["key"],
            name=row["name"],
            latest_version=row["version"],
            status=row["status"],
            enrolments=row["enrolments"],
            published_at=row["published_at"],
        )
        for row in await fetch_all(_sql.list_programmes(conn))
    ]


async def _programme(conn: Connection, key: str) -> Any:
    row = await _sql.programme(conn, key=key)
    if row is None:
        raise NotFound(f"programme {key!r} not found")
    return row


async def show_programme(conn: Connection, key: str, version: int | None = None) -> ProgrammeView:
    """The programme and one version (the latest by default) with its requirements."""
    row = await _programme(conn, key)
    versions = tuple(
        v["version"] for v in await fetch_all(_sql.versions(conn, programme_id=row["id"]))
    )
    if not versions:
        raise NotFound(f"programme {key!r} has no published version")
    wanted = versions[-1] if version is None else version
    if wanted not in versions:
        raise NotFound(f"programme {key!r} has no version {wanted} (latest is {versions[-1]})")
    return ProgrammeView(
        programme_id=row["id"],
        key=row["key"],
        status=row["status"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
        archived_at=row["archived_at"],
        enrolments=row["enrolments"],
        versions=versions,
        version=await _version(conn, row["id"], wanted),
    )


async def _version(conn: Connection, programme_id: UUID, version: int) -> VersionView:
    row = await _sql.version(conn, programme_id=programme_id, version=version)
    which = {"programme_id": programme_id, "version": version}
    requirements = await fetch_all(_sql.version_requirements(conn, **which))
    groups = await fetch_all(_sql.version_groups(conn, **which))
    return VersionView(
        version=row["version"],
        name=row["name"],
        description=row["description"],
        badge_image_url=row["badge_image_url"],
        validity_period=row["validity_period"],
        renewal_window=row["renewal_window"],
        published_at=row["published_at"],
        published_by=row["published_by"],
        definition_hash=row["definition_hash"],
        requirements=tuple(
            RequirementView(
                key=r["key"],
                name=r["name"],
                evaluation_id=r["evaluation_id"],
                evaluation_type=r["evaluation_type"],
                evaluation_title=r["evaluation_title"],
                min_score=r["min_score"],
                mandatory=r["is_mandatory"],
                elective_group=r["elective_group"],
                prerequisites=tuple(r["prerequisites"]),
            )
            for r in requirements
        ),
        elective_groups=tuple(GroupView(g["key"], g["name"], g["min_met"]) for g in groups),
    )


async def archive_programme(conn: Connection, key: str, actor: str, now: datetime) -> bool:
    """Archive the programme: it takes no new enrolments (the orchestrator dead-letters
    them) and no new versions; existing enrolments go on. False if already archived."""
    archived = await _sql.archive_programme(conn, key=key, actor=actor, archived_at=now)
    if archived is None:
        await _programme(conn, key)  # NotFound, else it was archived already
        return False
    return True


async def delete_programme(conn: Connection, key: str, role: str | None) -> int:
    """Delete a programme without enrolments, with every version; returns how many
    versions went. The database refuses while enrolments exist."""
    row = await _programme(conn, key)
    count = len(await fetch_all(_sql.versions(conn, programme_id=row["id"])))
    if await _sql.delete_programme(conn, key=key) is None:
        # A DELETE policy can only filter rows out, never raise: a programme we can
        # see but could not delete was refused by the role policy.
        raise RoleRefused(role)
    return count
