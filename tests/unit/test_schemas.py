"""schemas/ is generated from the event models and must not drift from them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import jsonschema

from shared.events import EVENT_MODELS, SubmissionCreated, new_event
from shared.events.schema_export import SCHEMA_DIR, documents, stale_documents


def test_checked_in_schemas_match_the_models() -> None:
    stale = stale_documents()
    assert not stale, f"run `programmes schemas` to regenerate: {stale}"
    assert {f"schemas/events/{t}.json" for t in EVENT_MODELS} <= set(documents())


def test_the_schema_accepts_what_we_produce_and_rejects_another_type() -> None:
    now = datetime.now(UTC)
    event = new_event(
        "submission.created",
        event_id=uuid.uuid4(),
        source="/evalium/delivery",
        tenant_id=uuid.uuid4(),
        time=now,
        data=SubmissionCreated(
            submission_id=uuid.uuid4(),
            assignment_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            evaluation_id=uuid.uuid4(),
            score=None,
            passed=True,
            score_version=1,
            submitted_at=now,
        ),
    )
    schema = json.loads((SCHEMA_DIR / "events/submission.created.json").read_text())
    body = event.to_json_dict()
    jsonschema.validate(body, schema)
    body["type"] = "score.remediated"
    try:
        jsonschema.validate(body, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("a score.remediated type passed the submission.created schema")


def test_the_asyncapi_document_lists_every_topic_of_the_fleet() -> None:
    document = json.loads(documents()["schemas/asyncapi.json"])
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(EVENT_MODELS)
