"""The CloudEvents envelope: what is accepted, and how every rejection is named."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import (
    EVENT_MODELS,
    EventDecodeError,
    ScoreRemediated,
    SubmissionCreated,
    decode_event,
    new_event,
)

LIMIT = 64 * 1024
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def submission(**overrides: Any) -> dict[str, Any]:
    event = new_event(
        "submission.created",
        event_id=uuid.uuid4(),
        source="/evalium/delivery",
        tenant_id=uuid.uuid4(),
        time=NOW,
        data=SubmissionCreated(
            submission_id=uuid.uuid4(),
            assignment_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            evaluation_id=uuid.uuid4(),
            score=80.0,
            passed=None,
            score_version=1,
            submitted_at=NOW,
        ),
    )
    body = event.to_json_dict()
    for path, value in overrides.items():
        target: dict[str, Any] = body
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[leaf]
        else:
            target[leaf] = value
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_a_produced_event_round_trips() -> None:
    body = submission()
    event = decode_event(encode(body), "submission.created", LIMIT)
    assert event.to_json_dict() == body
    assert "orgunitid" not in body  # absent, not null, when unset
    assert isinstance(event.data, SubmissionCreated)


@pytest.mark.parametrize(
    ("raw", "error_class"),
    [
        (b"", "EmptyMessage"),
        (b"x" * (LIMIT + 1), "OversizedMessage"),
        (b"\xff\xfe", "InvalidJson"),
        (b"{not json", "InvalidJson"),
        (b"[1, 2]", "NotACloudEvent"),
        (encode({"specversion": "1.0", "id": "x"}), "NotACloudEvent"),
        (encode(submission(type="score.remediated")), "UnexpectedEventType"),
        (encode(submission(specversion="0.3")), "SchemaValidationError"),
        (encode(submission(tenantid="not-a-uuid")), "SchemaValidationError"),
        (encode(submission(tenantid=...)), "SchemaValidationError"),
        (encode(submission(dataschemaversion=2)), "SchemaValidationError"),
        (encode(submission(time="2026-11-23T09:00:00")), "SchemaValidationError"),  # naive
        (encode(submission(data__score="80")), "SchemaValidationError"),  # no coercion
        (encode(submission(data__score=100.5)), "SchemaValidationError"),
        (encode(submission(data__score=-1)), "SchemaValidationError"),
        (encode(submission(data__score_version=0)), "SchemaValidationError"),
        (encode(submission(data__passed="yes")), "SchemaValidationError"),
        (encode(submission(data__submission_id=...)), "SchemaValidationError"),
        (encode(submission(data=None)), "SchemaValidationError"),
        (encode(submission()).replace(b'"score": 80.0', b'"score": NaN'), "SchemaValidationError"),
        (
            encode(submission()).replace(b'"score": 80.0', b'"score": 1e999'),
            "SchemaValidationError",
        ),
    ],
)
def test_every_rejection_is_named(raw: bytes, error_class: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw, "submission.created", LIMIT)
    assert caught.value.error_class == error_class
    assert str(caught.value)  # a message for the dead-letter headers


def test_remediation_versions_start_at_two() -> None:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/evalium/corrections",
        "type": "score.remediated",
        "time": NOW.isoformat(),
        "tenantid": str(uuid.uuid4()),
        "data": {
            "submission_id": str(uuid.uuid4()),
            "score_version": 1,
            "score": 50,
            "passed": None,
            "correction_batch_id": str(uuid.uuid4()),
            "remediated_at": NOW.isoformat(),
        },
    }
    with pytest.raises(EventDecodeError, match="score_version"):
        decode_event(encode(body), "score.remediated", LIMIT)
    body["data"]["score_version"] = 2
    assert isinstance(decode_event(encode(body), "score.remediated", LIMIT).data, ScoreRemediated)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    body = submission(data__future_field="x", partitionkey="abc")
    assert decode_event(encode(body), "submission.created", LIMIT).data.score == 80.0


def test_producing_the_wrong_payload_for_a_type_is_a_bug() -> None:
    with pytest.raises(TypeError):
        new_event(
            "score.remediated",
            event_id=uuid.uuid4(),
            source="/x",
            tenant_id=uuid.uuid4(),
            time=NOW,
            data=decode_event(encode(submission()), "submission.created", LIMIT).data,
        )


@settings(max_examples=300)
@given(st.binary(max_size=2048), st.sampled_from(sorted(EVENT_MODELS)))
def test_arbitrary_bytes_are_rejected_cleanly(raw: bytes, event_type: str) -> None:
    try:
        decode_event(raw, event_type, LIMIT)
    except EventDecodeError as error:
        assert error.error_class
    else:  # pragma: no cover - random bytes are never a valid event
        pytest.fail("random bytes accepted")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)


# The first draw pays for building the recursive strategy: not a slow test.
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(submission())), json_values, max_size=9))
def test_arbitrary_json_objects_are_rejected_cleanly(body: dict[str, Any]) -> None:
    template = submission()
    body = {**body, **{k: template[k] for k in ("specversion", "type") if k in body}}
    try:
        decode_event(encode(body), "submission.created", LIMIT)
    except EventDecodeError as error:
        assert error.error_class in {"NotACloudEvent", "SchemaValidationError"}


@given(
    score=st.none() | st.floats(min_value=0, max_value=100),
    passed=st.none() | st.booleans(),
    version=st.integers(min_value=1, max_value=1_000_000),
)
def test_valid_payloads_round_trip(score: float | None, passed: bool | None, version: int) -> None:
    body = submission(data__score=score, data__passed=passed, data__score_version=version)
    event = decode_event(encode(body), "submission.created", LIMIT)
    assert event.data.score == score
    assert event.data.passed is passed
    assert event.data.score_version == version
