"""Topic names: the event type, behind an optional prefix; dead letters add `.dlq`."""

from __future__ import annotations

DLQ_SUFFIX = ".dlq"


def topic_for(event_type: str, prefix: str = "") -> str:
    """The topic carrying `event_type` in an environment with `prefix`."""
    return f"{prefix}{event_type}"


def dead_letter_topic(topic: str) -> str:
    """Where messages of `topic` that cannot be processed go."""
    return f"{topic}{DLQ_SUFFIX}"
