"""The operator's command line (CONTRACT.md, section 4), run as the operator runs
it: the installed `programmes` entry point against the test's database and
broker, next to an orchestrator running in the test's event loop.

Every failure is exit code 1 and exactly one line on stderr (`CliResult.error`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from services.definitions import operations
from services.definitions.errors import RoleRefused
from services.definitions.model import parse_programme
from services.definitions.operations import Operator
from shared.db.uow import TenantUnitOfWork
from shared.events import CloudEvent, decode_event
from shared.events.envelope import CONTENT_TYPE
from shared.messaging import dead_letters as dl
from shared.messaging.topics import dead_letter_topic, topic_for
from shared.settings import Settings
from tests.support.cli import fails, ok, programmes
from tests.support.events import enrolment_created, submission_created
from tests.support.fleet import delivery_engine, send
from tests.support.kafka import consume, drained, eventually, produce, topic_exists
from tests.support.orchestration import (
    all_records,
    assignments_created,
    committed_offsets,
    consumed_topics,
    orchestrator,
    orchestrator_group,
    reaches_status,
)
from tests.support.programmes import publish_sample, sample_document
from tests.support.seed import seed_enrolment, seed_programme

KINDS = {"theory": "knowledge", "hazard": "observation", "report": "evidence"}
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def write_yaml(directory: Path, document: Any, name: str = "programme.yaml") -> Path:
    """A programme file as an author would write it."""
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def register(
    settings: Settings, tenant: uuid.UUID, kinds: dict[str, str], holder_name: str = "initials"
) -> dict[str, uuid.UUID]:
    """`tenant set` and one `evaluation add` per key, through the command line."""
    await ok(settings, "tenant", "set", "--tenant", tenant, "--holder-name", holder_name)
    evaluations = {key: uuid.uuid4() for key in kinds}
    await asyncio.gather(
        *(
            ok(
                settings,
                "evaluation",
                "add",
                "--tenant",
                tenant,
                "--id",
                evaluation,
                "--type",
                kinds[key],
                "--title",
                f"{key.title()} evaluation",
            )
            for key, evaluation in evaluations.items()
        )
    )
    return evaluations


async def definition_counts(pool: asyncpg.Pool, tenant: uuid.UUID) -> dict[str, int]:
    """Rows of every definitions table in the tenant."""
    tables = (
        "programmes",
        "programme_versions",
        "programme_requirements",
        "programme_elective_groups",
        "requirement_prerequisites",
    )
    async with TenantUnitOfWork(pool, tenant) as uow:
        return {t: await uow.connection.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


def attempt(
    tenant: uuid.UUID,
    link: asyncpg.Record,
    user: uuid.UUID,
    **result: Any,
) -> CloudEvent[Any]:
    """A submission for an assignment the orchestrator requested."""
    return submission_created(
        tenant,
        assignment_id=link["assignment_id"],
        user_id=user,
        evaluation_id=link["evaluation_id"],
        submitted_at=datetime.now(UTC),
        **result,
    )


# -- roles, enforced by the database -------------------------------------------------------


@pytest.mark.parametrize("role", [None, "viewer"])
async def test_a_definition_write_without_a_defining_role_is_refused_by_the_database(
    pool: asyncpg.Pool, role: str | None
) -> None:
    sample = await publish_sample(pool)  # as admin
    other = parse_programme(sample_document(sample.evaluations, key="another"))
    acting = Operator(sample.tenant_id, role, "mallory")
    with pytest.raises(RoleRefused, match="refused by the database"):
        await operations.add_evaluation(pool, acting, uuid.uuid4(), "knowledge", "Sneaky")
    with pytest.raises(RoleRefused):
        await operations.apply_programme(pool, acting, other, NOW)
    with pytest.raises(RoleRefused):
        await operations.archive_programme(pool, acting, "safety-inspector", NOW)
    with pytest.raises(RoleRefused):
        await operations.delete_programme(pool, acting, "safety-inspector")
    # The same, straight in SQL: the policies, not the service, refuse.
    for statement in (
        "UPDATE programmes SET updated_by = 'mallory'",
        "INSERT INTO evaluations (tenant_id, id, type, title)"
        " VALUES (app_current_tenant(), gen_random_uuid(), 'knowledge', 'x')",
    ):
        async with TenantUnitOfWork(pool, sample.tenant_id, actor_role=role) as uow:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await uow.connection.execute(statement)
    async with TenantUnitOfWork(pool, sample.tenant_id, actor_role=role) as uow:
        assert await uow.connection.execute("DELETE FROM programme_versions") == "DELETE 0"
        assert await uow.connection.execute("DELETE FROM programmes") == "DELETE 0"
        # Reading stays open to the services.
        assert [p.key for p in await operations.list_programmes(pool, acting)] == [
            "safety-inspector"
        ]
    assert (await definition_counts(pool, sample.tenant_id))["programme_versions"] == 1


@pytest.mark.parametrize("role", ["author", "admin"])
async def test_authors_and_admins_may_define_programmes(pool: asyncpg.Pool, role: str) -> None:
    acting = Operator(uuid.uuid4(), role, "ada")
    await operations.set_tenant(pool, acting, "full")
    evaluations = {key: uuid.uuid4() for key in KINDS}
    for key, evaluation in evaluations.items():
        assert await operations.add_evaluation(pool, acting, evaluation, KINDS[key], key)
    spec = parse_programme(sample_document(evaluations))
    published = await operations.apply_programme(pool, acting, spec, NOW)
    assert (published.version, published.created) == (1, True)
    changed = parse_programme(sample_document(evaluations, name="Renamed"))
    assert (await operations.apply_programme(pool, acting, changed, NOW)).version == 2
    assert await operations.archive_programme(pool, acting, spec.key, NOW)
    assert await operations.delete_programme(pool, acting, spec.key) == 2
    assert await definition_counts(pool, acting.tenant_id) == dict.fromkeys(
        await definition_counts(pool, acting.tenant_id), 0
    )


async def test_the_command_line_acts_with_the_given_role(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant = uuid.uuid4()
    evaluations = await register(settings, tenant, KINDS)
    path = write_yaml(tmp_path, sample_document(evaluations))
    refused = "actor role 'viewer' may not change programme definitions"
    line = await fails(settings, "programme", "apply", path, "--tenant", tenant, "--role", "viewer")
    assert refused in line
    env = {"PROGRAMMES_ACTOR_ROLE": "viewer"}
    assert refused in await fails(settings, "programme", "apply", path, "--tenant", tenant, env=env)
    assert (await definition_counts(pool, tenant))["programmes"] == 0
    created = await ok(
        settings, "programme", "apply", path, "--tenant", tenant, "--role", "author", "--json"
    )
    assert created.json()["outcome"] == "created"
    for verb in ("archive", "delete"):
        line = await fails(
            settings, "programme", verb, "safety-inspector", "--tenant", tenant, env=env
        )
        assert refused in line
    [listed] = (await ok(settings, "programme", "list", "--tenant", tenant, "--json")).json()
    assert listed["status"] == "active"


# -- programme files -------------------------------------------------------------------------

Edit = Callable[[dict[str, Any], uuid.UUID], None]


def _requirement(index: int, **fields: Any) -> Edit:
    return lambda document, foreign: document["requirements"][index].update(fields)


def _foreign_evaluation(document: dict[str, Any], foreign: uuid.UUID) -> None:
    document["requirements"][0]["evaluation_id"] = str(foreign)


def _duplicate(document: dict[str, Any], foreign: uuid.UUID) -> None:
    document["requirements"].append(dict(document["requirements"][2], name="Again"))


def _cycle(document: dict[str, Any], foreign: uuid.UUID) -> None:
    document["requirements"][0]["prerequisites"] = ["hazard"]


def _electives(document: dict[str, Any], foreign: uuid.UUID) -> None:
    document["elective_groups"] = [{"key": "electives", "name": "Electives", "min_met": 3}]
    for requirement in document["requirements"][1:]:
        requirement.update(elective_group="electives", mandatory=False)


INVALID_FILES: dict[str, tuple[Edit, str]] = {
    "unknown evaluation": (
        _requirement(1, evaluation_id=str(uuid.uuid4())),
        "requirements[1] (hazard).evaluation_id: evaluation",
    ),
    "another tenant's evaluation": (
        _foreign_evaluation,
        "requirements[0] (theory).evaluation_id: evaluation",
    ),
    "duplicate requirement keys": (_duplicate, "requirements: duplicate key 'report'"),
    "prerequisite cycle": (_cycle, "requirements.prerequisites: cycle"),
    "min_score above 100": (_requirement(0, min_score=120), "requirements[0] (theory).min_score:"),
    "min_score below 0": (_requirement(1, min_score=-5), "requirements[1] (hazard).min_score:"),
    "bad validity period": (
        lambda d, f: d.update(validity_period="one year"),
        "validity_period: 'one year' is not an ISO 8601 duration",
    ),
    "bad renewal window": (lambda d, f: d.update(renewal_window="30 days"), "renewal_window:"),
    "unknown group": (
        _requirement(2, elective_group="electives", mandatory=False),
        "requirements[2] (report).elective_group: unknown group 'electives'",
    ),
    "elective min_met too large": (
        _electives,
        "elective_groups[0] (electives).min_met: 3 exceeds its 2 member requirement(s)",
    ),
}


@pytest.mark.parametrize("case", [*sorted(INVALID_FILES), "not YAML"])
async def test_an_invalid_programme_file_fails_in_one_line_naming_the_field_and_writes_nothing(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path, case: str
) -> None:
    acting = Operator(uuid.uuid4(), "admin")
    stranger = Operator(uuid.uuid4(), "admin")
    foreign = uuid.uuid4()
    await operations.set_tenant(pool, stranger, None)
    await operations.add_evaluation(pool, stranger, foreign, "knowledge", "Not yours")
    await operations.set_tenant(pool, acting, None)
    evaluations = {key: uuid.uuid4() for key in KINDS}
    for key, evaluation in evaluations.items():
        await operations.add_evaluation(pool, acting, evaluation, KINDS[key], key)
    document = sample_document(evaluations)
    if case == "not YAML":
        path, expected = tmp_path / "broken.yaml", "not valid YAML: "
        path.write_text("key: safety\nrequirements: [\n  - key: theory\n")
    else:
        edit, expected = INVALID_FILES[case]
        edit(document, foreign)
        path = write_yaml(tmp_path, document)
    result = await programmes(settings, "programme", "apply", path, "--tenant", acting.tenant_id)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.error.startswith(f"error: {path}: ")
    assert expected in result.error
    assert set((await definition_counts(pool, acting.tenant_id)).values()) == {0}


async def test_apply_publishes_versions_that_list_and_show_read_back(
    settings: Settings, tmp_path: Path
) -> None:
    tenant = uuid.uuid4()
    set_result = await ok(
        settings, "tenant", "set", "--tenant", tenant, "--holder-name", "full", "--json"
    )
    assert set_result.json() == {
        "tenant_id": str(tenant),
        "holder_name_rule": "full",
        "created": True,
    }
    kept = await ok(settings, "tenant", "set", "--tenant", tenant, "--json")
    assert kept.json()["holder_name_rule"] == "full" and not kept.json()["created"]
    evaluations = {key: uuid.uuid4() for key in KINDS}
    await asyncio.gather(
        *(
            ok(
                settings, "evaluation", "add", "--tenant", tenant, "--id", evaluation,
                "--type", KINDS[key], "--title", f"{key} evaluation",
            )
            for key, evaluation in evaluations.items()
        )
    )  # fmt: skip
    again = await ok(
        settings, "evaluation", "add", "--tenant", tenant, "--id", evaluations["theory"],
        "--type", "knowledge", "--title", "theory evaluation", "--json",
    )  # fmt: skip
    assert again.json()["added"] is False

    path = write_yaml(tmp_path, sample_document(evaluations))
    apply = ("programme", "apply", path, "--tenant", tenant)
    assert (await ok(settings, *apply)).stdout == "safety-inspector: created (version 1)\n"
    assert (await ok(settings, *apply)).stdout == "safety-inspector: unchanged (version 1)\n"
    edited = sample_document(evaluations)
    edited["requirements"][0]["min_score"] = 90
    write_yaml(tmp_path, edited)
    published = (await ok(settings, *apply, "--json")).json()
    assert (published["outcome"], published["version"]) == ("new_version", 2)

    [listed] = (await ok(settings, "programme", "list", "--tenant", tenant, "--json")).json()
    assert listed["key"] == "safety-inspector"
    assert (listed["latest_version"], listed["status"], listed["enrolments"]) == (2, "active", 0)
    assert listed["name"] == "Certified Safety Inspector 2025"

    show = ("programme", "show", "safety-inspector", "--tenant", tenant)
    latest = (await ok(settings, *show, "--json")).json()
    assert latest["versions"] == [1, 2] and latest["version"]["version"] == 2
    assert latest["created_by"] == "test-operator"  # $USER, no --actor given
    assert latest["version"]["validity_period"] == "P1Y"
    requirements = {r["key"]: r for r in latest["version"]["requirements"]}
    assert list(requirements) == ["theory", "hazard", "report"]
    assert requirements["theory"]["min_score"] == 90
    assert requirements["hazard"]["prerequisites"] == ["theory"]
    assert requirements["report"]["min_score"] is None
    assert requirements["hazard"]["evaluation_title"] == "hazard evaluation"
    first = (await ok(settings, *show, "--version", "1", "--json")).json()
    assert first["version"]["requirements"][0]["min_score"] == 80
    no_version, no_programme, unknown_tenant, human = await asyncio.gather(
        fails(settings, *show, "--version", "3"),
        fails(settings, "programme", "show", "nope", "--tenant", tenant),
        fails(settings, "programme", "apply", path, "--tenant", uuid.uuid4()),
        ok(settings, *show),
    )
    assert "has no version 3 (latest is 2)" in no_version
    assert "programme 'nope' not found" in no_programme
    assert "is not known" in unknown_tenant
    assert "safety-inspector" in human.stdout and "hazard" in human.stdout


async def test_archived_programmes_take_no_enrolments_and_used_ones_cannot_be_deleted(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    seeded = await seed_programme(pool)  # key "safety"
    await seed_enrolment(pool, seeded)
    tenant = seeded.tenant_id
    line = await fails(settings, "programme", "delete", "safety", "--tenant", tenant)
    assert "programme safety has enrolments: archive it instead" in line
    archive = ("programme", "archive", "safety", "--tenant", tenant)
    assert (await ok(settings, *archive)).stdout == "safety: archived\n"
    assert (await ok(settings, *archive)).stdout == "safety: already archived\n"
    [listed] = (await ok(settings, "programme", "list", "--tenant", tenant, "--json")).json()
    assert (listed["status"], listed["enrolments"]) == ("archived", 1)
    line = await fails(
        settings, "enrol", "--tenant", tenant, "--user", uuid.uuid4(), "--programme", "safety"
    )
    assert "programme 'safety' is archived: it accepts no new enrolments" in line

    draft: dict[str, Any] = {
        "key": "draft",
        "name": "Draft",
        "requirements": [
            {"key": "theory", "name": "Theory", "evaluation_id": str(seeded.evaluation_id),
             "min_score": 50},
        ],
    }  # fmt: skip
    path = write_yaml(tmp_path, draft)
    await ok(settings, "programme", "apply", path, "--tenant", tenant)
    write_yaml(tmp_path, {**draft, "name": "Draft, revised"})
    await ok(settings, "programme", "apply", path, "--tenant", tenant)
    deleted = await ok(settings, "programme", "delete", "draft", "--tenant", tenant, "--json")
    assert deleted.json() == {"key": "draft", "deleted": True, "versions": 2}
    listed, gone = await asyncio.gather(
        ok(settings, "programme", "list", "--tenant", tenant, "--json"),
        fails(settings, "programme", "delete", "draft", "--tenant", tenant),
    )
    assert [p["key"] for p in listed.json()] == ["safety"]
    assert "programme 'draft' not found" in gone

    # An archived programme publishes no new version (an unchanged file is fine).
    await ok(settings, "programme", "apply", path, "--tenant", tenant)
    await ok(settings, "programme", "archive", "draft", "--tenant", tenant)
    assert (await ok(settings, "programme", "apply", path, "--tenant", tenant)).stdout == (
        "draft: unchanged (version 1)\n"
    )
    write_yaml(tmp_path, {**draft, "name": "Draft, again"})
    line = await fails(settings, "programme", "apply", path, "--tenant", tenant)
    assert "programme 'draft' is archived: it takes no new versions" in line


async def test_enrol_puts_exactly_one_enrolment_created_on_kafka(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool)
    tenant, user, enrolment = sample.tenant_id, uuid.uuid4(), uuid.uuid4()
    enrol = (
        "enrol", "--tenant", tenant, "--user", user, "--programme", "safety-inspector",
        "--name", "Ada Lovelace", "--enrolment", enrolment,
    )  # fmt: skip
    request = (await ok(settings, *enrol, "--json")).json()
    assert request["enrolment_id"] == str(enrolment)
    assert (request["requested"], request["latest_version"]) == (True, 1)
    topic = topic_for("enrolment.created", settings.topic_prefix)
    [record] = await all_records(settings.kafka_bootstrap_servers, topic)
    event = decode_event(record.value, "enrolment.created", 1 << 20)
    assert str(event.id) == request["event_id"]
    assert event.tenantid == tenant
    assert event.data.enrolment_id == enrolment
    assert event.data.user_id == user
    assert event.data.program_id == sample.programme_id
    assert event.data.user_display_name == "Ada Lovelace"
    assert record.key == str(enrolment).encode()
    assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()

    # The same enrolment again: nothing new is sent (its event id is derived from it).
    again = await ok(settings, *enrol)
    assert again.stdout == f"{enrolment}\n"
    assert len(await all_records(settings.kafka_bootstrap_servers, topic)) == 1

    taken = uuid.uuid4()  # an enrolment the platform created
    async with TenantUnitOfWork(pool, tenant) as uow:
        await uow.connection.execute(
            "INSERT INTO enrolments (tenant_id, id, user_id, programme_id, programme_version,"
            " snapshot, enrolled_at, created_by_event_id)"
            " VALUES ($1, $2, $3, $4, 1, '{}', now(), $5)",
            tenant, taken, user, sample.programme_id, uuid.uuid4(),
        )  # fmt: skip
        await uow.commit()
    safety = ("--user", user, "--programme", "safety-inspector")
    no_programme, long_name, unknown_tenant, conflict = await asyncio.gather(
        fails(settings, "enrol", "--tenant", tenant, "--user", user, "--programme", "nope"),
        fails(settings, "enrol", "--tenant", tenant, *safety, "--name", "x" * 201),
        fails(settings, "enrol", "--tenant", uuid.uuid4(), *safety),
        fails(settings, "enrol", "--tenant", tenant, *safety, "--enrolment", taken),
    )
    assert "programme 'nope' not found" in no_programme
    assert "user_display_name" in long_name
    assert "is not known" in unknown_tenant
    assert f"enrolment {taken} already exists" in conflict
    assert len(await all_records(settings.kafka_bootstrap_servers, topic)) == 1


# -- with the orchestrator running ---------------------------------------------------------


async def enrol(settings: Settings, tenant: uuid.UUID, user: uuid.UUID, key: str) -> uuid.UUID:
    """`programmes enrol`; returns the enrolment id it prints."""
    printed = await ok(settings, "enrol", "--tenant", tenant, "--user", user, "--programme", key)
    return uuid.UUID(printed.stdout.strip())


async def progress(settings: Settings, tenant: uuid.UUID, enrolment: uuid.UUID) -> Any:
    """`programmes progress --json`."""
    report = await ok(settings, "progress", "--tenant", tenant, "--enrolment", enrolment, "--json")
    return report.json()


def by_key(report: Any) -> dict[str, Any]:
    """A progress report's requirements by key."""
    return {r["key"]: r for r in report["requirements"]}


def pinning_document(evaluations: dict[str, uuid.UUID], version: int) -> dict[str, Any]:
    """Version 1: theory >= 80 and a report. Version 2: theory >= 90, the report,
    and a hazard observation after theory."""
    theory = {"key": "theory", "name": "Theory", "evaluation_id": str(evaluations["theory"]),
              "min_score": 80 if version == 1 else 90}  # fmt: skip
    report = {"key": "report", "name": "Report", "evaluation_id": str(evaluations["report"]),
              "min_score": None}  # fmt: skip
    hazard = {"key": "hazard", "name": "Hazard", "evaluation_id": str(evaluations["hazard"]),
              "min_score": 70, "prerequisites": ["theory"]}  # fmt: skip
    requirements = [theory, report] if version == 1 else [theory, report, hazard]
    return {"key": "inspector", "name": f"Inspector v{version}", "requirements": requirements}


async def test_an_edit_mid_enrolment_leaves_each_enrolment_on_its_own_version(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant, first_user, second_user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    evaluations = await register(settings, tenant, KINDS)
    path = write_yaml(tmp_path, pinning_document(evaluations, 1))
    completed_topic = topic_for("enrolment.completed", settings.topic_prefix)
    async with delivery_engine() as engine, orchestrator(settings, engine.port) as running:
        await ok(settings, "programme", "apply", path, "--tenant", tenant)
        first = await enrol(settings, tenant, first_user, "inspector")
        links = await assignments_created(pool, tenant, first, {"theory", "report"})
        repeated = await ok(
            settings, "enrol", "--tenant", tenant, "--user", first_user,
            "--programme", "inspector", "--enrolment", first, "--json",
        )  # fmt: skip
        assert repeated.json()["requested"] is False
        # The programme changes while the first learner is on it.
        write_yaml(tmp_path, pinning_document(evaluations, 2))
        assert (
            "new version 2"
            in (await ok(settings, "programme", "apply", path, "--tenant", tenant)).stdout
        )
        second = await enrol(settings, tenant, second_user, "inspector")
        second_links = await assignments_created(pool, tenant, second, {"theory", "report"})

        # 85 meets version 1's theory (>= 80) but not version 2's (>= 90).
        await send(
            running,
            attempt(tenant, links["theory"], first_user, score=85.0),
            attempt(tenant, links["report"], first_user, passed=True),
            attempt(tenant, second_links["theory"], second_user, score=85.0),
            attempt(tenant, second_links["report"], second_user, passed=True),
        )
        await reaches_status(pool, tenant, first, "completed")

        async def second_attempts_recorded() -> bool:
            rows = by_key(await progress(settings, tenant, second))
            return bool(rows["theory"]["attempts"] == 1 and rows["report"]["status"] == "met")

        await eventually(second_attempts_recorded, within=60)
        old = await progress(settings, tenant, first)
        assert (old["programme_version"], old["status"]) == (1, "completed")
        assert list(by_key(old)) == ["theory", "report"]
        assert (old["met"], old["required"], old["why"]["complete"]) == (2, 2, True)
        assert by_key(old)["theory"]["evidence"]["score"] == 85
        new = await progress(settings, tenant, second)
        assert (new["programme_version"], new["status"]) == (2, "in_progress")
        assert list(by_key(new)) == ["theory", "report", "hazard"]
        assert by_key(new)["theory"]["status"] == "pending"
        assert by_key(new)["hazard"]["waiting_for"] == ["theory"]
        assert new["why"]["missing_mandatory"] == ["theory", "hazard"]
        [completed] = await all_records(settings.kafka_bootstrap_servers, completed_topic)
        event = decode_event(completed.value, "enrolment.completed", 1 << 20)
        assert (event.data.enrolment_id, event.data.program_version) == (first, 1)

        # Archived: no new enrolments (the platform's are dead-lettered), but the
        # enrolments under way go on to completion.
        await ok(settings, "programme", "archive", "inspector", "--tenant", tenant)
        [listed] = (await ok(settings, "programme", "list", "--tenant", tenant, "--json")).json()
        late = enrolment_created(tenant, uuid.UUID(listed["programme_id"]), enrolled_at=NOW)
        await send(running, late)
        dlq = dead_letter_topic(topic_for("enrolment.created", settings.topic_prefix))
        [letter] = await consume(settings.kafka_bootstrap_servers, dlq, 1)
        assert dict(letter.headers)[dl.ERROR_CLASS] == b"ProgrammeArchived"
        await send(running, attempt(tenant, second_links["theory"], second_user, score=95.0))
        hazard = await assignments_created(pool, tenant, second, {"theory", "report", "hazard"})
        await send(running, attempt(tenant, hazard["hazard"], second_user, score=75.0))
        await reaches_status(pool, tenant, second, "completed")
        records = await all_records(settings.kafka_bootstrap_servers, completed_topic)
        versions = {
            (e.data.enrolment_id, e.data.program_version)
            for e in (decode_event(r.value, "enrolment.completed", 1 << 20) for r in records)
        }
        assert versions == {(first, 1), (second, 2)}


ELECTIVES: dict[str, Any] = {
    "key": "site-safety",
    "name": "Site Safety",
    "elective_groups": [{"key": "specialisms", "name": "Specialisms", "min_met": 2}],
}
ELECTIVE_KINDS = {"core": "knowledge", "first-aid": "evidence", "fire": "observation",
                  "height": "observation"}  # fmt: skip


def electives_document(evaluations: dict[str, uuid.UUID]) -> dict[str, Any]:
    """A mandatory core and two of three specialisms (pass/fail)."""
    core = {"key": "core", "name": "Core", "evaluation_id": str(evaluations["core"]),
            "min_score": 50}  # fmt: skip
    specialisms = [
        {"key": key, "name": key.title(), "evaluation_id": str(evaluations[key]),
         "min_score": None, "mandatory": False, "elective_group": "specialisms"}
        for key in ("first-aid", "fire", "height")
    ]  # fmt: skip
    return {**ELECTIVES, "requirements": [core, *specialisms]}


async def test_two_of_three_electives_complete_the_enrolment_and_progress_says_why(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    evaluations = await register(settings, tenant, ELECTIVE_KINDS)
    path = write_yaml(tmp_path, electives_document(evaluations))
    await ok(settings, "programme", "apply", path, "--tenant", tenant)
    async with delivery_engine() as engine, orchestrator(settings, engine.port) as running:
        enrolment = await enrol(settings, tenant, user, "site-safety")
        links = await assignments_created(pool, tenant, enrolment, set(ELECTIVE_KINDS))
        core, first_aid = (
            attempt(tenant, links["core"], user, score=60.0),
            attempt(tenant, links["first-aid"], user, passed=True),
        )
        await send(running, core, first_aid)

        async def two_met() -> bool:
            return bool((await progress(settings, tenant, enrolment))["met"] == 2)

        await eventually(two_met, within=60)
        report = await progress(settings, tenant, enrolment)
        assert (report["status"], report["met"], report["required"]) == ("in_progress", 2, 3)
        assert report["why"] == {
            "complete": False,
            "missing_mandatory": [],
            "short_groups": [
                {"key": "specialisms", "name": "Specialisms", "min_met": 2, "met": 1,
                 "needed": 1, "candidates": ["fire", "height"]},
            ],
        }  # fmt: skip
        rows = by_key(report)
        assert rows["core"]["evidence"]["submission_id"] == str(core.data.submission_id)
        assert (rows["core"]["evidence"]["score"], rows["core"]["evidence"]["score_version"]) == (
            60,
            1,
        )
        assert rows["core"]["evidence"]["submitted_at"] is not None
        assert rows["first-aid"]["evidence"]["passed"] is True
        assert rows["first-aid"]["elective_group"] == "specialisms"
        assert rows["fire"]["evidence"] is None and rows["fire"]["status"] == "pending"
        assert rows["fire"]["assignment"]["status"] == "created"
        assert rows["fire"]["assignment"]["assignment_id"] == str(links["fire"]["assignment_id"])
        why = ("progress", "--tenant", tenant, "--enrolment", enrolment)
        assert (await ok(settings, *why, "--why", "--json")).json() == report["why"]
        human = (await ok(settings, *why)).stdout
        assert "why not complete?" in human and "group specialisms (Specialisms) needs 1" in human

        # A failed elective counts as an attempt, not towards the group.
        await send(running, attempt(tenant, links["fire"], user, passed=False))

        async def fire_attempted() -> bool:
            rows = by_key(await progress(settings, tenant, enrolment))
            return bool(rows["fire"]["attempts"] == 1)

        await eventually(fire_attempted, within=60)
        height = attempt(tenant, links["height"], user, passed=True)
        await send(running, height)
        await reaches_status(pool, tenant, enrolment, "completed")
        topic = topic_for("enrolment.completed", settings.topic_prefix)
        [record] = await consume(settings.kafka_bootstrap_servers, topic, 1)
        completed = decode_event(record.value, "enrolment.completed", 1 << 20)
        assert {e.submission_id for e in completed.data.evidence} == {
            core.data.submission_id,
            first_aid.data.submission_id,
            height.data.submission_id,
        }
        done = await progress(settings, tenant, enrolment)
        assert (done["status"], done["met"], done["required"]) == ("completed", 3, 3)
        assert done["why"] == {"complete": True, "missing_mandatory": [], "short_groups": []}
        assert by_key(done)["fire"]["status"] == "pending"
        assert "nothing is missing" in (await ok(settings, *why, "--why")).stdout
    assert "not found" in await fails(
        settings, "progress", "--tenant", tenant, "--enrolment", uuid.uuid4()
    )


async def fleet_state(pool: asyncpg.Pool, tenant: uuid.UUID) -> dict[str, Any]:
    """Everything the orchestrator writes for a tenant."""
    queries = {
        "enrolments": "SELECT * FROM enrolments ORDER BY id",
        "progress": "SELECT * FROM progress ORDER BY enrolment_id, requirement_id",
        "history": "SELECT * FROM progress_history ORDER BY enrolment_id, requirement_id, seq",
        "enrolment_history": "SELECT * FROM enrolment_history ORDER BY enrolment_id, seq",
        "assignments": "SELECT * FROM assignments ORDER BY requirement_id",
        "submissions": "SELECT * FROM submissions ORDER BY id",
        "scores": "SELECT * FROM submission_scores ORDER BY submission_id, score_version",
        "inbox": "SELECT * FROM inbox ORDER BY event_id",
        "outbox": "SELECT * FROM outbox ORDER BY id",
    }
    async with TenantUnitOfWork(pool, tenant) as uow:
        return {
            name: [dict(r) for r in await uow.connection.fetch(query)]
            for name, query in queries.items()
        }


async def test_replay_refuses_a_live_group_and_reprocessing_changes_nothing(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    tenant, user = sample.tenant_id, uuid.uuid4()
    bootstrap, group = settings.kafka_bootstrap_servers, orchestrator_group(settings)
    replay = ("replay", "--group", "programmes-orchestrator")
    output_topics = [
        topic_for(t, settings.topic_prefix) for t in ("enrolment.completed", "enrolment.reopened")
    ]
    async with delivery_engine() as engine:
        async with orchestrator(settings, engine.port) as running:
            enrolment = await enrol(settings, tenant, user, "safety-inspector")
            links = await assignments_created(pool, tenant, enrolment, set(KINDS))
            await send(
                running,
                attempt(tenant, links["theory"], user, score=60.0),
                attempt(tenant, links["theory"], user, score=85.0),
                attempt(tenant, links["hazard"], user, score=75.0),
                attempt(tenant, links["report"], user, passed=True),
            )
            await reaches_status(pool, tenant, enrolment, "completed")
            await drained(bootstrap, group, consumed_topics(settings))
            line = await fails(settings, *replay, "--to", "earliest")
            assert f"group {group} has" in line and "live member(s)" in line

        before = await fleet_state(pool, tenant)
        outputs = {t: await all_records(bootstrap, t) for t in output_topics}
        committed = await committed_offsets(bootstrap, group)
        assert any(offset > 0 for offset in committed.values())

        # Dry runs: old -> new per partition, nothing changes.
        plan = (await ok(settings, *replay, "--to", "earliest", "--json")).json()
        assert (plan["group"], plan["executed"]) == (group, False)
        moves = {(m["topic"], m["partition"]): m for m in plan["partitions"]}
        assert set(moves) == set(committed)
        assert all(m["current"] == committed[k] and m["new"] == 0 for k, m in moves.items())
        latest = (await ok(settings, *replay, "--to", "latest", "--json")).json()
        assert all(m["new"] == m["current"] for m in latest["partitions"])
        enrolments = topic_for("enrolment.created", settings.topic_prefix)
        by_time = await ok(
            settings, *replay, "--to", "2000-01-01T00:00:00Z", "--topic", "enrolment.created",
            "--json",
        )  # fmt: skip
        assert {m["topic"] for m in by_time.json()["partitions"]} == {enrolments}
        assert all(m["new"] == 0 for m in by_time.json()["partitions"])
        assert await committed_offsets(bootstrap, group) == committed

        executed = (await ok(settings, *replay, "--to", "earliest", "--execute", "--json")).json()
        assert executed["executed"] is True
        assert set((await committed_offsets(bootstrap, group)).values()) == {0}

        # Reprocess everything: the same rows, and no new event on any output topic.
        async with orchestrator(settings, engine.port):
            await drained(bootstrap, group, consumed_topics(settings))
        assert await committed_offsets(bootstrap, group) == committed
        assert await fleet_state(pool, tenant) == before
        for topic, records in outputs.items():
            assert [r.value for r in await all_records(bootstrap, topic)] == [
                r.value for r in records
            ], topic


async def test_a_dead_letter_is_replayed_once_after_its_tenant_exists(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    stranger = uuid.uuid4()
    submission = submission_created(
        stranger,
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        evaluation_id=uuid.uuid4(),
        submitted_at=NOW,
        score=90.0,
    )
    bootstrap = settings.kafka_bootstrap_servers
    source = topic_for("submission.created", settings.topic_prefix)
    dlq = ("dlq", "list", "--topic", "submission.created", "--json")
    replay = ("dlq", "replay", "--topic", "submission.created", "--json")

    async def submissions() -> list[asyncpg.Record]:
        async with TenantUnitOfWork(pool, stranger) as uow:
            return await uow.connection.fetch("SELECT event_id FROM submissions")

    async with delivery_engine() as engine, orchestrator(settings, engine.port):
        await produce(
            bootstrap, source, [submission.to_bytes()], key=b"k-1", headers=[("x-origin", b"t")]
        )
        [letter] = await consume(bootstrap, dead_letter_topic(source), 1)
        assert dict(letter.headers)[dl.ERROR_CLASS] == b"UnknownTenant"

        listed = (await ok(settings, *dlq)).json()
        assert listed["topic"] == dead_letter_topic(source)
        [shown] = listed["dead_letters"]
        assert (shown["event_id"], shown["event_type"]) == (
            str(submission.id),
            "submission.created",
        )
        assert shown["key"] == "k-1"
        assert shown["headers"][dl.ERROR_CLASS] == "UnknownTenant"
        assert shown["headers"][dl.SOURCE_TOPIC] == source
        assert "x-origin" not in shown["headers"]

        dry = (await ok(settings, *replay)).json()
        assert [d["outcome"] for d in dry["dead_letters"]] == ["would_replay"]
        assert len(await all_records(bootstrap, source)) == 1

        await ok(settings, "tenant", "set", "--tenant", stranger)
        done = (await ok(settings, *replay, "--execute")).json()
        assert [(d["outcome"], d["event_id"]) for d in done["dead_letters"]] == [
            ("replayed", str(submission.id))
        ]

        async def applied() -> bool:
            return len(await submissions()) == 1

        await eventually(applied)
        again = (await ok(settings, *replay, "--execute")).json()
        assert again["dead_letters"] == []
        await drained(bootstrap, orchestrator_group(settings), [source])

    original, replayed = await all_records(bootstrap, source)
    assert (replayed.value, replayed.key) == (original.value, original.key)
    assert replayed.headers == original.headers  # the x-dlq-* context stripped
    assert [r["event_id"] for r in await submissions()] == [submission.id]
    assert len(await all_records(bootstrap, dead_letter_topic(source))) == 1
    assert len((await ok(settings, *dlq)).json()["dead_letters"]) == 1

    # A mistyped topic is reported, and not created on the way.
    typo = topic_for("submission.creatd", settings.topic_prefix)
    missing, empty = await asyncio.gather(
        fails(settings, "replay", "--group", "programmes-orchestrator", "--to", "earliest",
              "--topic", "submission.creatd"),
        ok(settings, "dlq", "list", "--topic", "submission.creatd", "--json"),
    )  # fmt: skip
    assert f"topic {typo} does not exist" in missing
    assert empty.json()["dead_letters"] == []
    assert not await topic_exists(bootstrap, typo)
    assert not await topic_exists(bootstrap, dead_letter_topic(typo))


async def test_a_bad_setting_is_named_in_one_line(settings: Settings) -> None:
    line = await fails(settings, "run", "orchestrator", env={"PROGRAMMES_EVENT_LOOP": "trio"})
    assert line == (
        "error: invalid configuration: PROGRAMMES_EVENT_LOOP: "
        "Input should be 'uvloop' or 'asyncio' (got 'trio')"
    )
