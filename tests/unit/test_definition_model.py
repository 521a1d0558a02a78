"""The programme file is validated fully before anything is written, and every
error is one line naming the field."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.errors import CommandError
from cli.programmes import read_programme_file
from services.definitions.model import DefinitionError, parse_programme
from tests.support.programmes import sample_document

EVALUATIONS = {key: uuid.uuid4() for key in ("theory", "hazard", "report")}
Change = Callable[[dict[str, Any]], None]


def _document(change: Change | None = None) -> dict[str, Any]:
    document = copy.deepcopy(sample_document(EVALUATIONS))
    if change is not None:
        change(document)
    return document


def _requirement(index: int, **fields: Any) -> Change:
    return lambda d: d["requirements"][index].update(fields)


def _electives(min_met: int, members: tuple[int, ...] = (1, 2), mandatory: bool = False) -> Change:
    def change(document: dict[str, Any]) -> None:
        document["elective_groups"] = [
            {"key": "electives", "name": "Electives", "min_met": min_met}
        ]
        for index in members:
            document["requirements"][index].update(elective_group="electives", mandatory=mandatory)

    return change


def _duplicate_requirement(document: dict[str, Any]) -> None:
    document["requirements"].append(dict(document["requirements"][0], name="Again"))


def _cycle(document: dict[str, Any]) -> None:
    document["requirements"][0]["prerequisites"] = ["report"]
    document["requirements"][2]["prerequisites"] = ["hazard"]


INVALID: dict[str, tuple[Change, str]] = {
    "duplicate requirement key": (_duplicate_requirement, "requirements: duplicate key 'theory'"),
    "duplicate group key": (
        lambda d: d.update(
            elective_groups=[
                {"key": "g", "name": "G", "min_met": 1},
                {"key": "g", "name": "G again", "min_met": 1},
            ]
        ),
        "elective_groups: duplicate key 'g'",
    ),
    "prerequisite cycle": (_cycle, "requirements.prerequisites: cycle"),
    "unknown prerequisite": (
        _requirement(1, prerequisites=["nope"]),
        "requirements[1] (hazard).prerequisites: unknown requirement 'nope'",
    ),
    "self prerequisite": (
        _requirement(1, prerequisites=["hazard"]),
        "requirements[1] (hazard).prerequisites:",
    ),
    "min_score over 100": (
        _requirement(1, min_score=100.5),
        "requirements[1] (hazard).min_score:",
    ),
    "min_score under 0": (_requirement(0, min_score=-1), "requirements[0] (theory).min_score:"),
    "min_score not a number": (
        _requirement(0, min_score="high"),
        "requirements[0] (theory).min_score:",
    ),
    "validity not ISO 8601": (
        lambda d: d.update(validity_period="1 year"),
        "validity_period: '1 year' is not an ISO 8601 duration",
    ),
    "renewal window zero": (
        lambda d: d.update(renewal_window="P0D"),
        "renewal_window: 'P0D' must be a positive ISO 8601 duration",
    ),
    "validity garbage": (lambda d: d.update(validity_period="P1X"), "validity_period:"),
    "unknown group": (
        _requirement(2, elective_group="electives", mandatory=False),
        "requirements[2] (report).elective_group: unknown group 'electives'",
    ),
    "mandatory group member": (
        _electives(1, members=(1,), mandatory=True),
        "requirements[1] (hazard): a requirement in an elective group must set mandatory: false",
    ),
    "min_met too large": (
        _electives(3),
        "elective_groups[0] (electives).min_met: 3 exceeds its 2 member requirement(s)",
    ),
    "min_met zero": (_electives(0), "elective_groups[0] (electives).min_met:"),
    "unknown field": (lambda d: d.update(colour="red"), "colour: Extra inputs are not permitted"),
    "missing requirements": (lambda d: d.pop("requirements"), "requirements: Field required"),
    "evaluation not a UUID": (
        _requirement(0, evaluation_id="2f6c..."),
        "requirements[0] (theory).evaluation_id:",
    ),
    "key pattern": (lambda d: d.update(key="Safety Inspector"), "key: String should match"),
    "badge not a URL": (lambda d: d.update(badge_image_url="badge.png"), "badge_image_url:"),
}


def test_the_sample_programme_is_valid_and_its_hash_ignores_key_order() -> None:
    document = _document()
    spec = parse_programme(document)
    assert [r.key for r in spec.requirements] == ["theory", "hazard", "report"]
    reordered = dict(reversed(list(document.items())))
    assert parse_programme(reordered).content_hash() == spec.content_hash()
    changed = parse_programme(_document(_requirement(0, min_score=81)))
    assert changed.content_hash() != spec.content_hash()


def test_n_of_m_electives_are_valid() -> None:
    spec = parse_programme(_document(_electives(2)))
    assert spec.elective_groups[0].min_met == 2


@pytest.mark.parametrize("case", sorted(INVALID))
def test_every_error_is_one_line_naming_the_field(case: str) -> None:
    change, expected = INVALID[case]
    with pytest.raises(DefinitionError) as raised:
        parse_programme(_document(change))
    message = str(raised.value)
    assert message.startswith(expected), message
    assert "\n" not in message


@pytest.mark.parametrize("document", [None, [], "key: x", 42])
def test_a_document_that_is_not_a_mapping_is_refused(document: Any) -> None:
    with pytest.raises(DefinitionError, match="must be a YAML mapping"):
        parse_programme(document)


def test_the_file_reader_refuses_bad_yaml_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("key: safety\nrequirements: [\n")
    with pytest.raises(CommandError) as raised:
        read_programme_file(path)
    assert str(raised.value).startswith(f"{path}: not valid YAML:")
    assert "line" in str(raised.value) and "\n" not in str(raised.value)


def test_the_file_reader_refuses_a_key_given_twice(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("key: safety\nkey: other\nname: Safety\n")
    with pytest.raises(CommandError, match="duplicate key 'key'"):
        read_programme_file(path)


def test_the_file_reader_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "score.yaml"
    path.write_text(yaml.safe_dump(_document(_requirement(1, min_score=101))))
    with pytest.raises(CommandError) as raised:
        read_programme_file(path)
    assert str(raised.value).startswith(f"{path}: requirements[1] (hazard).min_score:")


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        read_programme_file(tmp_path / "absent.yaml")
