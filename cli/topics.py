"""Kafka names and clients for the operator commands.

Topic and group names given on the command line are environment-independent
(`enrolment.created`, `programmes-orchestrator`): PROGRAMMES_TOPIC_PREFIX is
prepended, as the services do, unless the name already carries it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from cli.errors import CommandError
from shared.messaging.clients import Client, connected


def qualified(name: str, prefix: str) -> str:
    """`name` in this environment: behind the topic prefix."""
    return name if not prefix or name.startswith(prefix) else f"{prefix}{name}"


@contextlib.asynccontextmanager
async def started(client: Client, bootstrap: str) -> AsyncIterator[Client]:
    """Start an aiokafka client (admin, consumer), and always close it; a broker
    that cannot be reached is one clear line."""
    async with contextlib.AsyncExitStack() as clients:
        try:
            await clients.enter_async_context(connected(client))
        except KafkaError as error:
            raise CommandError(f"cannot reach Kafka at {bootstrap}: {error}") from None
        yield client


def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    """An admin client (group descriptions and committed offsets)."""
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="programmes-cli")


def reader(bootstrap: str, group_id: str | None = None) -> AIOKafkaConsumer:
    """A consumer that never commits by itself (and never joins its group: the
    commands assign partitions explicitly)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id="programmes-cli",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Every partition of `topic` (empty when the topic does not exist).

    Asked of the cluster each time: a consumer's own metadata only covers the
    topics it knew about when it started or was assigned. Existence is checked
    first with a listing, because a metadata request naming a missing topic
    makes a broker with auto.create.topics.enable create it (a typo in --topic
    would leave a new topic behind).
    """
    async with started(admin_client(bootstrap), bootstrap) as admin:
        if topic not in await admin.list_topics():
            return []
        [described] = await admin.describe_topics([topic])
    if described["error_code"] != 0:
        return []
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])
