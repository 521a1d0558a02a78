"""What every scenario gets: the stack, the sizes, the results to add to, the
memory sampler, and the seeded databases scenarios share (seeded once, copied
for every run)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import seed, workload
from bench.kafka import Message
from bench.options import Options, Sizes
from bench.processes import MemorySampler, service_environment
from bench.report import Results
from bench.stack import Stack
from tests.support.programmes import Sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Submissions:
    """A seeded database of linked enrolments and submissions for them."""

    database: str  # copy it, never write to it
    samples: list[Sample]
    learners: list[seed.Learner]
    messages: list[Message]


def interleaved(groups: Sequence[Sequence[seed.Learner]]) -> list[seed.Learner]:
    """Learners of every tenant in turn, so consecutive blocks mix tenants."""
    mixed = itertools.chain.from_iterable(itertools.zip_longest(*groups))
    return [x for x in mixed if x is not None]


@dataclass
class Context:
    stack: Stack
    options: Options
    results: Results
    memory: MemorySampler
    logs: Path
    _submissions: Submissions | None = field(default=None, repr=False)

    @property
    def sizes(self) -> Sizes:
        return self.options.sizes

    @property
    def runs(self) -> int:
        return self.options.runs

    def env(self, database: str, prefix: str, **extra: str) -> dict[str, str]:
        return service_environment(
            self.stack.conns,
            database,
            prefix,
            self.options.log_level,
            PROGRAMMES_EVENT_LOOP=self.options.event_loop,
            **extra,
        )

    async def _programmes(self, label: str) -> tuple[str, list[Sample]]:
        name = await self.stack.copy(await self.stack.migrated_template(), label)
        samples = await seed.programmes(self.stack.conns.app(name), self.sizes.tenants)
        return name, samples

    @contextlib.asynccontextmanager
    async def seeded(self, label: str) -> AsyncIterator[tuple[str, list[Sample]]]:
        """A scenario's own copy of the migrated template, with the sample programme
        published for `sizes.tenants` tenants (further seeding is the caller's);
        dropped when the scenario is done with it."""
        name, samples = await self._programmes(label)
        try:
            yield name, samples
        finally:
            await self.stack.drop(name)

    async def submissions(self) -> Submissions:
        """Linked enrolments for the largest submission workload of the run, and the
        workload itself (seeded and generated once, shared by scenarios)."""
        if self._submissions is None:
            count = max(self.sizes.events, self.sizes.naive_events)
            name, samples = await self._programmes("submissions")
            per_tenant = -(-workload.learners_for(count) // len(samples))
            url = self.stack.conns.app(name)
            groups = [await seed.linked_enrolments(url, s, per_tenant, T0) for s in samples]
            await seed.past(self.stack, name, samples, per_tenant, T0)
            learners = interleaved(groups)
            messages = list(workload.messages(workload.submissions(learners, T0), count))
            self._submissions = Submissions(name, samples, learners, messages)
        return self._submissions
