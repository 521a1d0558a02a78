"""A product bug scenario 3 found (docs/reliability.md, "Findings"), now fixed
(shared/errors.py counts every retriable Kafka error as transient): a broker restart
could make a service exit.

Right after the broker comes back, partitions have no leader for a moment and the
outbox relay's publish fails with LeaderNotAvailableError. That error is retriable
(aiokafka marks it so), but it was not among shared/errors.py's transient faults: the
relay's retry let it through, the relay loop died and `serve` stopped the whole
service ("error: RuntimeError: background loop failed: LeaderNotAvailableError()",
exit 1). Nothing was lost — a restarted process publishes the rows — but every
orchestrator and certifier could crash together on a routine broker restart, where
the README promises that an unavailable broker is retried with backoff.
"""

from __future__ import annotations

from aiokafka.errors import LeaderNotAvailableError

from shared.errors import is_transient


def test_a_partition_without_a_leader_is_a_transient_fault() -> None:
    assert LeaderNotAvailableError.retriable
    assert is_transient(LeaderNotAvailableError())
