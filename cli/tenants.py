"""`programmes tenant set` and `programmes evaluation add`: a tenant and its catalogue."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

import typer

from cli.common import (
    ActorOption,
    JsonOption,
    RoleOption,
    TenantOption,
    jsonable,
    operator,
    print_json,
    run_with_pool,
)
from services.definitions import operations

tenant_app = typer.Typer(help="Tenants and their privacy rule.", no_args_is_help=True)
evaluation_app = typer.Typer(help="A tenant's evaluation catalogue.", no_args_is_help=True)


class HolderName(StrEnum):
    """How a certificate holder's name shows on the public verification page."""

    full = "full"
    initials = "initials"
    hidden = "hidden"


class EvaluationType(StrEnum):
    """Kinds of evaluation the delivery engine runs."""

    knowledge = "knowledge"
    observation = "observation"
    evidence = "evidence"


@tenant_app.command("set")
def set_tenant(
    tenant: TenantOption,
    holder_name: Annotated[
        HolderName | None,
        typer.Option(
            "--holder-name",
            help="Holder's name on verification pages (a new tenant gets initials).",
        ),
    ] = None,
    role: RoleOption = "admin",
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register a tenant (if missing) and set its holder-name rule."""
    rule = None if holder_name is None else holder_name.value
    acting = operator(tenant, role, actor)

    result = run_with_pool(lambda pool: operations.set_tenant(pool, acting, rule))
    if json_output:
        print_json({"tenant_id": tenant, **jsonable(result)})
    else:
        verb = "registered" if result.created else "updated"
        typer.echo(f"tenant {tenant} {verb}: holder names {result.holder_name_rule}")


@evaluation_app.command("add")
def add_evaluation(
    tenant: TenantOption,
    evaluation_id: Annotated[UUID, typer.Option("--id", help="The evaluation's id (UUID).")],
    kind: Annotated[EvaluationType, typer.Option("--type", help="Kind of evaluation.")],
    title: Annotated[str, typer.Option("--title", help="Its title (1 to 500 characters).")],
    role: RoleOption = "admin",
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an evaluation in a tenant's catalogue (programmes may then use it)."""
    acting = operator(tenant, role, actor)

    added = run_with_pool(
        lambda pool: operations.add_evaluation(pool, acting, evaluation_id, kind.value, title)
    )
    if json_output:
        print_json({"tenant_id": tenant, "evaluation_id": evaluation_id, "added": added})
    elif added:
        typer.echo(f"evaluation {evaluation_id} added ({kind.value}: {title})")
    else:
        typer.echo(f"evaluation {evaluation_id} is already in the catalogue (unchanged)")
