"""Hypothesis strategies for submission.created records that are poison by
construction (each breaks the contract in a way no reading of it allows) and
records that are valid by construction (any score 0-100 or null, any unicode
source, unknown extra fields): the oracle of tests/support/poison.py then says
exactly what must become of each."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Literal

from hypothesis import strategies as st

from tests.support.poison import NOW, Effect, Probe, encode, submission_event

SUBMISSION = "submission.created"
_HEX = "0123456789abcdefABCDEF"
_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
# Text that can never parse as a UUID or a date (no hex digit, no digit at all).
_no_hex = st.text(
    alphabet=st.characters(blacklist_categories=_SURROGATES, blacklist_characters=_HEX + "-{}:"),
    max_size=12,
)
_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_not_uuid = st.one_of(_no_hex, st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
_not_time = st.one_of(
    _no_hex,
    st.booleans(),
    st.datetimes(timezones=st.none()).map(lambda d: d.isoformat()),  # naive
)
_bad_score = st.one_of(
    st.floats(min_value=100, exclude_min=True),  # includes +inf
    st.floats(max_value=0, exclude_max=True).filter(lambda x: x < 0),  # includes -inf
    st.just(math.nan),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.floats(0, 100), min_size=1, max_size=2),
)
_bad_version = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=1_000_001),
    st.floats(),
    st.text(max_size=5),
    st.booleans(),
)
_bad_passed = st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False))
# Where a valid submission is broken, and with what.
_BREAKS: dict[str, st.SearchStrategy[Any]] = {
    "id": _not_uuid,
    "tenantid": _not_uuid,
    "specversion": st.one_of(st.text(max_size=5).filter(lambda s: s != "1.0"), st.integers()),
    "time": _not_time,
    "source": st.one_of(st.just(""), st.integers(), st.booleans(), st.none()),
    "dataschemaversion": st.integers().filter(lambda n: n != 1),
    "data": st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers())),
    "data.submission_id": _not_uuid,
    "data.assignment_id": _not_uuid,
    "data.user_id": _not_uuid,
    "data.evaluation_id": _not_uuid,
    "data.score": _bad_score,
    "data.passed": _bad_passed,
    "data.score_version": _bad_version,
    "data.submitted_at": _not_time,
}
_REQUIRED = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "tenantid",
    "data",
    "data.submission_id",
    "data.assignment_id",
    "data.user_id",
    "data.evaluation_id",
    "data.score_version",
    "data.submitted_at",
]
_source = st.text(
    alphabet=st.characters(blacklist_categories=_SURROGATES, blacklist_characters="\x00"),
    min_size=1,
    max_size=60,
)


def _set(obj: dict[str, Any], path: str, value: Any, *, delete: bool = False) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        obj = obj[part]
    if delete:
        del obj[leaf]
    else:
        obj[leaf] = value


@st.composite
def valid_submission(draw: st.DrawFn, tenant: uuid.UUID, name: str) -> Probe:
    """Any submission the contract accepts: applied."""
    scored = draw(st.booleans())
    score = draw(st.floats(0, 100)) if scored else None
    passed = draw(st.none() | st.booleans())
    event = submission_event(tenant, score=score, passed=passed)
    obj = event.to_json_dict()
    obj["source"] = draw(_source)
    if draw(st.booleans()):
        obj["orgunitid"] = str(uuid.uuid4())
    extras = draw(st.dictionaries(st.text(max_size=6).map("x_".__add__), json_values, max_size=2))
    obj.update(extras)
    obj["data"].update(draw(st.dictionaries(st.text(max_size=6).map("x_".__add__), json_values)))
    effect = Effect("submission", event.data.submission_id, event.id)
    return Probe(name, SUBMISSION, encode(obj), "applied", tenant, effect)


@st.composite
def poison_submission(draw: st.DrawFn, tenant: uuid.UUID, name: str) -> Probe:
    """A submission.created record that can never be applied."""
    event = submission_event(tenant, score=50.0)
    obj = event.to_json_dict()
    kind = draw(st.sampled_from(["break", "drop", "truncate", "bytes", "json"]))
    if kind == "break":
        path = draw(st.sampled_from(sorted(_BREAKS)))
        _set(obj, path, draw(_BREAKS[path]))
        value = encode(obj)
    elif kind == "drop":
        _set(obj, draw(st.sampled_from(_REQUIRED)), None, delete=True)
        value = encode(obj)
    elif kind == "truncate":
        whole = encode(obj)
        value = whole[: draw(st.integers(0, len(whole) - 1))]
    elif kind == "bytes":
        value = draw(st.binary(max_size=64))
    else:  # any JSON that is no CloudEvent object
        value = json.dumps(draw(json_values)).encode()
    return Probe(name, SUBMISSION, value, "dead_lettered")


@st.composite
def mixed_batch(draw: st.DrawFn, tenants: tuple[uuid.UUID, uuid.UUID], prefix: str) -> list[Probe]:
    """Valid submissions of two tenants with poison among them."""
    size = draw(st.integers(8, 24))
    probes = []
    for i in range(size):
        name = f"{prefix}-{i}"
        if draw(st.integers(0, 2)) == 0:
            probes.append(draw(poison_submission(draw(st.sampled_from(tenants)), name)))
        else:
            probes.append(draw(valid_submission(draw(st.sampled_from(tenants)), name)))
    return probes


__all__ = ["NOW", "mixed_batch", "poison_submission", "valid_submission"]
