"""Resetting a consumer group's committed offsets, for reprocessing.

Only a stopped group may be reset: a live member would overwrite the new
offsets with its own at its next commit (and the broker refuses commits from
outside a group that has members anyway). Reprocessing is safe because every
consumer de-duplicates on the event id in its inbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from cli.errors import CommandError
from cli.topics import admin_client, partitions, reader, started


@dataclass(frozen=True)
class Target:
    """Where to move: `earliest`, `latest`, an absolute offset, or a point in time."""

    kind: str  # earliest | latest | offset | time
    offset: int | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class OffsetMove:
    """One partition's committed offset, before and after."""

    topic: str
    partition: int
    current: int | None  # None: the group never committed on this partition
    new: int


def parse_target(text: str) -> Target:
    """Read `--to`: earliest, latest, an offset (>= 0), or an ISO 8601 date-time
    (without a zone: UTC)."""
    if text in ("earliest", "latest"):
        return Target(text)
    if text.isdigit():
        return Target("offset", offset=int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--to {text!r}: expected earliest, latest, an offset or an ISO 8601 date-time"
        ) from None
    return Target("time", time=moment if moment.tzinfo else moment.replace(tzinfo=UTC))


async def reset_offsets(
    bootstrap: str, group: str, topics: Sequence[str], target: Target, *, execute: bool
) -> list[OffsetMove]:
    """Plan (and with `execute`, commit) the group's new offsets on `topics`, or on
    every topic the group has committed offsets for when none are named."""
    async with (
        started(admin_client(bootstrap), bootstrap) as admin,
        started(reader(bootstrap), bootstrap) as consumer,
    ):
        await refuse_live_group(admin, group)
        committed = await admin.list_consumer_group_offsets(group)
        names = list(topics) or sorted({tp.topic for tp in committed})
        if not names:
            raise CommandError(f"group {group} has no committed offsets: name a --topic")
        tps = await _partitions(bootstrap, names)
        targets = await _targets(consumer, tps, target)
    moves = [
        OffsetMove(
            tp.topic,
            tp.partition,
            committed[tp].offset if tp in committed else None,
            targets[tp],
        )
        for tp in tps
    ]
    if execute:
        await _commit(bootstrap, group, moves)
    return moves


async def refuse_live_group(admin: AIOKafkaAdminClient, group: str) -> None:
    """Fail while the group has members (its consumers must be stopped first)."""
    [response] = await admin.describe_consumer_groups([group])
    [described] = response.to_object()["groups"]
    members = described["members"]
    if members:
        clients = sorted({m["client_id"] for m in members})
        raise CommandError(
            f"group {group} has {len(members)} live member(s) ({', '.join(clients)}), "
            f"state {described['state']}: stop its consumers first"
        )


async def _partitions(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    found: list[TopicPartition] = []
    for topic in topics:
        tps = await partitions(bootstrap, topic)
        if not tps:
            raise CommandError(f"topic {topic} does not exist")
        found.extend(tps)
    return found


async def _targets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], target: Target
) -> dict[TopicPartition, int]:
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    if target.kind == "earliest":
        return dict(begin)
    if target.kind == "latest":
        return dict(end)
    if target.kind == "offset":
        wanted = target.offset or 0
        return {tp: min(max(wanted, begin[tp]), end[tp]) for tp in tps}
    assert target.time is not None
    stamp = int(target.time.timestamp() * 1000)
    found = await consumer.offsets_for_times({tp: stamp for tp in tps})
    # Nothing at or after that time on a partition: everything there is older.
    return {tp: end[tp] if found[tp] is None else found[tp].offset for tp in tps}


async def _commit(bootstrap: str, group: str, moves: Sequence[OffsetMove]) -> None:
    """Commit as the group, outside any membership (the group is empty)."""
    async with started(reader(bootstrap, group_id=group), bootstrap) as consumer:
        offsets = {
            TopicPartition(m.topic, m.partition): OffsetAndMetadata(m.new, "") for m in moves
        }
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
