"""`programmes`: the operator's command line (CONTRACT.md, section 4).

Every command reads its connections from the environment, takes `--json` where
it prints data, and fails with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import os
import sys

import typer
from pydantic import ValidationError
from typer.exceptions import Abort, TyperException

from cli import demo, dev, dlq, enrol, programmes, progress, renew, replay, run, tenants
from cli.errors import CommandError
from shared.db.migrate import MigrationError, migrate
from shared.settings import get_settings

app = typer.Typer(
    name="programmes",
    help="Programmes & Certifications: operate the fleet and its local stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(dev.app, name="dev")
app.registered_commands.extend(run.app.registered_commands)
app.registered_commands.extend(renew.app.registered_commands)
app.registered_commands.extend(demo.app.registered_commands)
app.add_typer(tenants.tenant_app, name="tenant")
app.add_typer(tenants.evaluation_app, name="evaluation")
app.add_typer(programmes.app, name="programme")
app.command("enrol")(enrol.enrol)
app.command("progress")(progress.progress)
app.command("replay")(replay.replay)
app.add_typer(dlq.app, name="dlq")


@app.command("migrate")
def migrate_command(
    status: bool = typer.Option(False, "--status", help="Only show which migrations are applied."),
) -> None:
    """Apply database migrations (as MIGRATIONS_DATABASE_URL, the schema owner)."""
    settings = get_settings()
    url = settings.migrations_database_url
    if not url:
        raise CommandError("MIGRATIONS_DATABASE_URL is not set (the schema owner's connection)")
    try:
        output = migrate(url, "status" if status else "up")
    except MigrationError as error:
        raise CommandError(f"migration failed: {error}") from error
    typer.echo(output)


@app.command("schemas")
def schemas_command(
    check: bool = typer.Option(
        False, "--check", help="Fail if schemas/ or docs/asyncapi.md is out of date."
    ),
) -> None:
    """Regenerate schemas/ (JSON Schema per event, AsyncAPI) and docs/asyncapi.md
    from the event models."""
    from shared.events.schema_export import ROOT, stale_documents, write_documents

    if check:
        if stale := stale_documents():
            raise CommandError(f"generated documents are out of date: {', '.join(stale)}")
        typer.echo("schemas/ and docs/asyncapi.md are up to date")
        return
    for path in write_documents():
        typer.echo(f"wrote {path.relative_to(ROOT)}")


def _usage_error(error: TyperException) -> str:
    """A command-line mistake in one line (typer would draw a panel of several)."""
    context = getattr(error, "ctx", None)
    where = f"{context.command_path}: " if context is not None else ""
    message = getattr(error, "format_message", lambda: str(error))()
    return f"{where}{' '.join(message.split())} (see --help)"


def _configuration_error(error: ValidationError) -> str:
    """Each invalid setting as `NAME: what is wrong (got VALUE)`, on one line."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']} (got {e.get('input')!r})"
        for e in error.errors()
    )


def main() -> None:
    """Console entry point: run the app, turning known failures into one line."""
    try:
        # Not standalone: usage errors reach us, to be told in one line like the rest.
        code = app(standalone_mode=False)
    except CommandError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except TyperException as error:
        # typer's (vendored) click errors: usage mistakes, and the bare group
        # invocation that has printed its help already.
        if type(error).__name__ != "NoArgsIsHelpError":
            typer.echo(f"error: {_usage_error(error)}", err=True)
        sys.exit(getattr(error, "exit_code", 2))
    except Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except ValidationError as error:
        # A bad environment variable: name it (pydantic's first line only names the model).
        typer.echo(f"error: invalid configuration: {_configuration_error(error)}", err=True)
        sys.exit(1)
    except Exception as error:
        # One line for the operator; the traceback on demand.
        if os.environ.get("PROGRAMMES_DEBUG"):
            raise
        message = str(error).splitlines()[0] if str(error) else ""
        typer.echo(f"error: {type(error).__name__}: {message}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
