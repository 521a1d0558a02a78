"""`programmes programme apply|list|show|archive|delete`: programme definitions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Column, Table

from cli.common import (
    ActorOption,
    JsonOption,
    RoleOption,
    TenantOption,
    database,
    operator,
    print_json,
    run,
    run_with_pool,
    score_text,
    when,
)
from cli.errors import CommandError
from services.definitions import operations
from services.definitions.model import DefinitionError, ProgrammeFile, parse_programme
from services.definitions.programmes import ProgrammeView
from services.definitions.service import Published
from shared.settings import Settings

app = typer.Typer(help="Programme definitions: immutable, numbered versions.", no_args_is_help=True)
KeyArgument = Annotated[str, typer.Argument(help="The programme's key.")]


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error rather
    than silently the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def read_programme_file(path: Path) -> ProgrammeFile:
    """Read and fully validate a programme file; any problem is one line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise CommandError(f"{path}: cannot read: {reason}") from None
    try:
        # A SafeLoader subclass: yaml.safe_load's semantics plus unique keys.
        document = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise CommandError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
    try:
        return parse_programme(document)
    except DefinitionError as error:
        raise CommandError(f"{path}: {error}") from None


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="The programme file (YAML).")],
    tenant: TenantOption,
    role: RoleOption = "admin",
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a programme, or publish a new version when FILE changed."""
    spec = read_programme_file(file)
    acting = operator(tenant, role, actor)

    async def body(settings: Settings) -> Published:
        async with database(settings) as pool:
            try:
                return await operations.apply_programme(pool, acting, spec, datetime.now(UTC))
            except DefinitionError as error:  # the catalogue check: name the file too
                raise DefinitionError(f"{file}: {error}") from None

    published = run(body)
    outcome = (
        "created" if published.created else "new_version" if published.published else "unchanged"
    )
    if json_output:
        print_json(
            {
                "key": spec.key,
                "programme_id": published.programme_id,
                "version": published.version,
                "outcome": outcome,
            }
        )
    else:
        typer.echo(_applied(spec.key, published.version, outcome))


def _applied(key: str, version: int, outcome: str) -> str:
    if outcome == "created":
        return f"{key}: created (version {version})"
    if outcome == "new_version":
        return f"{key}: new version {version}"
    return f"{key}: unchanged (version {version})"


@app.command("list")
def list_programmes(tenant: TenantOption, json_output: JsonOption = False) -> None:
    """List the tenant's programmes: latest version, status, enrolments."""
    acting = operator(tenant)

    found = run_with_pool(lambda pool: operations.list_programmes(pool, acting))
    if json_output:
        print_json(found)
        return
    if not found:
        typer.echo(f"no programmes in tenant {tenant}")
        return
    table = Table(
        Column("key", no_wrap=True), "name", "version", "status", "enrolments", "published"
    )
    for p in found:
        version = "-" if p.latest_version is None else str(p.latest_version)
        table.add_row(
            p.key, p.name or "-", version, p.status, str(p.enrolments), when(p.published_at)
        )
    Console().print(table)


@app.command("show")
def show(
    key: KeyArgument,
    tenant: TenantOption,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Which version (default: latest).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show one version of a programme: requirements, elective groups, prerequisites."""
    acting = operator(tenant)

    view = run_with_pool(lambda pool: operations.show_programme(pool, acting, key, version))
    if json_output:
        print_json(view)
    else:
        _render(view)


def _render(view: ProgrammeView) -> None:
    console, shown = Console(highlight=False), view.version
    console.print(f"[bold]{view.key}[/bold] — {shown.name}")
    console.print(
        f"status {view.status} · version {shown.version} of {list(view.versions)} · "
        f"published {when(shown.published_at)} by {shown.published_by} · "
        f"{view.enrolments} enrolment(s)"
    )
    console.print(
        f"validity {shown.validity_period or 'none'} · renewal window {shown.renewal_window}"
    )
    if shown.description:
        console.print(shown.description)
    table = Table(
        Column("key", no_wrap=True), "name", "evaluation", "min score", "counts as", "prerequisites"
    )
    for r in shown.requirements:
        table.add_row(
            r.key,
            r.name,
            f"{r.evaluation_title} ({r.evaluation_type})",
            "pass/fail" if r.min_score is None else score_text(r.min_score),
            "mandatory"
            if r.mandatory
            else f"group {r.elective_group}"
            if r.elective_group
            else "optional",
            ", ".join(r.prerequisites) or "-",
        )
    console.print(table)
    for g in shown.elective_groups:
        console.print(f"group {g.key} ({g.name}): at least {g.min_met} of its requirements")


@app.command("archive")
def archive(
    key: KeyArgument,
    tenant: TenantOption,
    role: RoleOption = "admin",
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Archive a programme: no new enrolments or versions; existing enrolments go on."""
    acting = operator(tenant, role, actor)

    archived = run_with_pool(
        lambda pool: operations.archive_programme(pool, acting, key, datetime.now(UTC))
    )
    if json_output:
        print_json({"key": key, "archived": archived})
    else:
        typer.echo(f"{key}: archived" if archived else f"{key}: already archived")


@app.command("delete")
def delete(
    key: KeyArgument,
    tenant: TenantOption,
    role: RoleOption = "admin",
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a programme and its versions; refused once it has enrolments (archive it)."""
    acting = operator(tenant, role, actor)

    versions = run_with_pool(lambda pool: operations.delete_programme(pool, acting, key))
    if json_output:
        print_json({"key": key, "deleted": True, "versions": versions})
    else:
        typer.echo(f"{key}: deleted with its {versions} version(s)")
