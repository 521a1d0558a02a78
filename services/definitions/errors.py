"""What the definitions service refuses, each with a one-line message for the operator."""

from __future__ import annotations

DEFINING_ROLES = ("admin", "author")


class DefinitionsError(Exception):
    """A refusal of the definitions service; `str()` is one line for the operator."""


class UnknownTenant(DefinitionsError):
    """The tenant is not registered yet (`programmes tenant set` registers it)."""


class NotFound(DefinitionsError):
    """No such programme, version or enrolment in this tenant."""


class ProgrammeArchived(DefinitionsError):
    """The programme is archived: no new versions, no new enrolments."""


class ProgrammeInUse(DefinitionsError):
    """The programme has enrolments: the database refuses to delete it."""


class RoleRefused(DefinitionsError):
    """The database refused the write: the actor's role may not define programmes."""

    def __init__(self, role: str | None) -> None:
        shown = repr(role) if role else "(none)"
        super().__init__(
            f"actor role {shown} may not change programme definitions "
            f"(only {' or '.join(DEFINING_ROLES)} may): refused by the database"
        )
