"""The programme file (CONTRACT.md, section 4), validated fully before anything is
written: every error names its field in one line."""

from __future__ import annotations

import graphlib
import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import isodate
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.definitions.errors import DefinitionsError

Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
Name = Annotated[str, Field(min_length=1, max_length=500)]


class DefinitionError(DefinitionsError, ValueError):
    """The programme file is invalid; the message names the field."""


_REFERENCE = datetime(2000, 1, 1)


def _duration(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError) as error:
        raise ValueError(f"{value!r} is not an ISO 8601 duration (e.g. P1Y, P30D)") from error
    # Years and months have no fixed length: compare on a reference date.
    if not str(value).startswith("P") or _REFERENCE + parsed <= _REFERENCE:
        raise ValueError(f"{value!r} must be a positive ISO 8601 duration")
    return value


class RequirementSpec(BaseModel):
    """One requirement as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Key
    name: Name
    evaluation_id: UUID
    min_score: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] | None
    mandatory: bool = True
    elective_group: Key | None = None
    prerequisites: tuple[Key, ...] = ()


class ElectiveGroupSpec(BaseModel):
    """ "At least `min_met` of the requirements naming this group"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Key
    name: Name
    min_met: Annotated[int, Field(ge=1)]


class ProgrammeFile(BaseModel):
    """A programme definition; `content()` is what a version freezes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Key
    name: Name
    description: Annotated[str, Field(max_length=10_000)] = ""
    badge_image_url: Annotated[str, Field(max_length=2000, pattern=r"^https?://")] | None = None
    validity_period: str | None = None
    renewal_window: str = "P30D"
    requirements: Annotated[tuple[RequirementSpec, ...], Field(min_length=1, max_length=200)]
    elective_groups: tuple[ElectiveGroupSpec, ...] = ()

    @field_validator("validity_period")
    @classmethod
    def _validity(cls, value: str | None) -> str | None:
        return _duration(value, "validity_period")

    @field_validator("renewal_window")
    @classmethod
    def _window(cls, value: str) -> str:
        checked = _duration(value, "renewal_window")
        assert checked is not None
        return checked

    @model_validator(mode="after")
    def _graph(self) -> ProgrammeFile:
        keys = [r.key for r in self.requirements]
        _no_duplicates("requirements", keys)
        _no_duplicates("elective_groups", [g.key for g in self.elective_groups])
        groups = {g.key: g for g in self.elective_groups}
        for index, requirement in enumerate(self.requirements):
            _check_requirement(index, requirement, set(keys), groups)
        for index, group in enumerate(self.elective_groups):
            members = sum(1 for r in self.requirements if r.elective_group == group.key)
            if members < group.min_met:
                raise ValueError(
                    f"elective_groups[{index}] ({group.key}).min_met: {group.min_met} exceeds "
                    f"its {members} member requirement(s)"
                )
        if not any(r.mandatory for r in self.requirements) and not self.elective_groups:
            raise ValueError("requirements: at least one must be mandatory (or in a group)")
        _no_cycles(self.requirements)
        return self

    def content(self) -> dict[str, Any]:
        """The canonical content of a version (what its hash covers)."""
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """sha256 of the canonical content: unchanged file, same hash, no new version."""
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _no_duplicates(field: str, keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{field}: duplicate key {key!r}")
        seen.add(key)


def _check_requirement(
    index: int, requirement: RequirementSpec, keys: set[str], groups: dict[str, Any]
) -> None:
    where = f"requirements[{index}] ({requirement.key})"
    for prerequisite in requirement.prerequisites:
        if prerequisite not in keys:
            raise ValueError(f"{where}.prerequisites: unknown requirement {prerequisite!r}")
        if prerequisite == requirement.key:
            raise ValueError(f"{where}.prerequisites: a requirement cannot require itself")
    if requirement.elective_group is not None:
        if requirement.elective_group not in groups:
            raise ValueError(
                f"{where}.elective_group: unknown group {requirement.elective_group!r}"
            )
        if requirement.mandatory:
            raise ValueError(
                f"{where}: a requirement in an elective group must set mandatory: false"
            )


def _no_cycles(requirements: tuple[RequirementSpec, ...]) -> None:
    graph = {r.key: set(r.prerequisites) for r in requirements}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise ValueError(f"requirements.prerequisites: cycle {cycle}") from None


def parse_programme(document: Any) -> ProgrammeFile:
    """Validate a parsed YAML document; raise DefinitionError naming the first bad field."""
    if not isinstance(document, dict):
        raise DefinitionError("the programme file must be a YAML mapping (key: value, ...)")
    try:
        return ProgrammeFile.model_validate(document)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        location = _location(first["loc"], document)
        message = " ".join(str(first["msg"]).removeprefix("Value error, ").split())
        raise DefinitionError(f"{location}: {message}" if location else message) from None


def _location(loc: tuple[int | str, ...], document: dict[str, Any]) -> str:
    """`requirements[1] (hazard).min_score`: the style of the cross-field checks above."""
    parts: list[str] = []
    node: Any = document
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("key"), str):
                parts[-1] += f" ({node['key']})"
        else:
            parts.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts)
