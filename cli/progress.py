"""`programmes progress`: where an enrolment stands, requirement by requirement,
with the evidence, and why it is not complete yet."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from cli.common import (
    JsonOption,
    TenantOption,
    operator,
    print_json,
    run_with_pool,
    score_text,
    when,
)
from services.definitions import operations
from services.definitions.progress import (
    AssignmentView,
    Evidence,
    ProgressReport,
    RequirementProgress,
    WhyNotComplete,
)


def progress(
    tenant: TenantOption,
    enrolment: Annotated[UUID, typer.Option("--enrolment", help="The enrolment id.")],
    why: Annotated[bool, typer.Option("--why", help="Only say what is missing.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Show an enrolment's progress: each requirement's state, evidence and assignment,
    and why it is not complete."""
    acting = operator(tenant)

    report = run_with_pool(lambda pool: operations.progress(pool, acting, enrolment))
    if json_output:
        print_json(report.why if why else report)
        return
    console = Console(highlight=False)
    if why:
        render_why(console, report)
    else:
        render_report(console, report)


def render_report(console: Console, report: ProgressReport) -> None:
    """The whole report: the enrolment, a progress bar, one row per requirement
    (state, evidence, attempts, assignment), then why it is not complete."""
    _render_requirements(console, report)
    render_why(console, report)


def _render_requirements(console: Console, report: ProgressReport) -> None:
    who = report.user_display_name or str(report.user_id)
    console.print(f"[bold]enrolment {report.enrolment_id}[/bold] · {who}")
    console.print(
        f"{report.programme_name} ({report.programme_key}, version {report.programme_version})"
        f" · {report.status} · enrolled {when(report.enrolled_at)}"
        + (f" · completed {when(report.completed_at)}" if report.completed_at else "")
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(report.required, 1), completed=report.met, width=40),
        f"{report.met}/{report.required} met",
    )
    console.print(bar)
    table = Table("requirement", "counts as", "state", "evidence", "attempts", "assignment")
    for requirement in report.requirements:
        table.add_row(
            f"{requirement.key}\n[dim]{requirement.name}[/dim]",
            _counts_as(requirement),
            _state(requirement),
            _evidence(requirement.evidence),
            str(requirement.attempts),
            _assignment(requirement.assignment),
        )
    console.print(table)


def _counts_as(requirement: RequirementProgress) -> str:
    bar = (
        "pass/fail" if requirement.min_score is None else f">= {score_text(requirement.min_score)}"
    )
    if requirement.mandatory:
        return f"mandatory, {bar}"
    if requirement.elective_group:
        return f"group {requirement.elective_group}, {bar}"
    return f"optional, {bar}"


def _state(requirement: RequirementProgress) -> str:
    if requirement.status == "met":
        return "[green]met[/green]"
    if requirement.waiting_for:
        return f"waiting for {', '.join(requirement.waiting_for)}"
    return requirement.status


def _evidence(evidence: Evidence | None) -> str:
    if evidence is None:
        return "-"
    result = "passed" if evidence.score is None else f"score {score_text(evidence.score)}"
    return (
        f"submission {evidence.submission_id}\n"
        f"{result} (score version {evidence.score_version})\n"
        f"submitted {when(evidence.submitted_at)}"
    )


def _assignment(assignment: AssignmentView | None) -> str:
    if assignment is None:
        return "-"
    if assignment.status == "created":
        return f"created {assignment.assignment_id}"
    error = f": {assignment.last_error}" if assignment.last_error else ""
    return f"requested, {assignment.dispatch_attempts} failed tries{error}"


def render_why(console: Console, report: ProgressReport) -> None:
    """The "why not complete?" section alone."""
    console.print("[bold]why not complete?[/bold]")
    for line in why_lines(report.why, report):
        console.print(f"  {line}")


def why_lines(why: WhyNotComplete, report: ProgressReport) -> list[str]:
    """What is missing, one line per mandatory requirement or short group."""
    if why.complete:
        return ["nothing is missing: every mandatory requirement and group minimum is met"]
    by_key = {r.key: r for r in report.requirements}
    lines = []
    for key in why.missing_mandatory:
        requirement = by_key[key]
        waiting = (
            f", waiting for {', '.join(requirement.waiting_for)}" if requirement.waiting_for else ""
        )
        lines.append(
            f"mandatory {key} ({requirement.name}) is {requirement.status}: "
            f"{requirement.attempts} attempt(s){waiting}"
        )
    for group in why.short_groups:
        lines.append(
            f"group {group.key} ({group.name}) needs {group.needed} more "
            f"(has {group.met} of {group.min_met}), from: {', '.join(group.candidates)}"
        )
    return lines
