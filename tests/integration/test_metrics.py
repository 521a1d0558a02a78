"""/metrics after a real scenario: the operational figures an SRE alerts on are
there, with values that match what happened."""

from __future__ import annotations

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.messaging.topics import topic_for
from shared.settings import Settings
from tests.support.journeys import certificates, complete, fleet
from tests.support.kafka import eventually
from tests.support.programmes import publish_sample


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in found.items()
        if n == name and all((k, want) in ls for k, want in labels.items())
    )


async def test_metrics_after_a_learner_is_certified(settings: Settings, pool: asyncpg.Pool) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    async with fleet(settings) as running_fleet:
        await complete(pool, running_fleet, sample)

        async def issued() -> bool:
            return len(await certificates(pool, sample.tenant_id)) == 1

        await eventually(issued)
        submissions = topic_for("submission.created", settings.topic_prefix)
        group = settings.topic_prefix + "programmes-orchestrator"

        async def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            async with httpx.AsyncClient() as client:
                return samples((await client.get(f"{running_fleet.verify_base}/metrics")).text)

        async def settled() -> bool:
            found = await scraped()
            return (
                value(found, "programmes_outbox_backlog") == 0
                and value(found, "programmes_certificates_total", event="issued") >= 1
                and any(
                    n == "programmes_consumer_lag" and ("group", group) in ls for (n, ls) in found
                )
                and value(found, "programmes_consumer_lag", group=group) == 0
            )

        await eventually(settled)
        found = await scraped()
    assert value(found, "programmes_messages_total", topic=submissions, outcome="applied") == 3
    assert value(found, "programmes_message_handling_seconds_count", topic=submissions) == 3
    assert value(found, "programmes_batch_size_count", topic=submissions) >= 1
    assert value(found, "programmes_assignment_requests_total", outcome="created") >= 3
    assert value(found, "programmes_assignment_requests_pending") == 0
    completed = topic_for("enrolment.completed", settings.topic_prefix)
    assert value(found, "programmes_outbox_published_total", topic=completed) >= 1
    assert value(found, "programmes_outbox_publish_delay_seconds_count") >= 2
    # The registry is process-wide (other tests dead-letter on purpose): this test's topics only.
    ours = [
        v
        for (n, ls), v in found.items()
        if n == "programmes_messages_total"
        and ("outcome", "dead_lettered") in ls
        and dict(ls)["topic"].startswith(settings.topic_prefix)
    ]
    assert sum(ours) == 0
