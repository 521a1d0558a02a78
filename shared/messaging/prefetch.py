"""A consumer that keeps the next fetch in flight while a batch is applied.

aiokafka buffers one fetch response per partition and sends the next fetch for
it only once the application has taken every buffered record. A subscriber that
applies a batch in a few milliseconds of database round trips therefore leaves
its partitions unfetched for most of each cycle: a record that arrives just
after a fetch is answered waits on the broker for the next `getmany`, is fetched
during the following batch and applied only in the one after (about two and a
half cycles; measured in docs/adr/0014-prefetching-consumer.md).

`PrefetchingConsumer` drains aiokafka's buffer in a background task, into a
buffer of its own (bounded by `prefetch_records`), so aiokafka fetches again at
once; `getmany` hands out what has arrived. The consumer's positions run ahead of
what the application has been handed, so `commit()` without offsets commits, per
partition, the offset of the next record not handed out yet (what aiokafka's
`commit()` means for a consumer that does not prefetch), never the fetch
position. It commits in the background, one commit in flight at a time, so that
the next batch need not wait for the broker; pending commits are finished before
partitions are revoked and before the consumer stops. Buffered records are
dropped when their partition is revoked or sought, so no record is handed out
out of order, or after its partition moved to another member.

The liveness check of the group (`max_poll_interval_ms`) keeps its meaning: the
background task stops fetching when the application has not asked for records
for half that interval, so a stuck handler still makes the member leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError

log = structlog.get_logger("programmes.consumer")

DRAIN_POLL_MS = 200
"""How long one background poll waits for records before it looks again at
whether the application still wants them."""

Records = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


class PrefetchingConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka has no type hints
    """An `AIOKafkaConsumer` whose fetches run ahead of the application by up to
    `prefetch_records` records (see the module's documentation)."""

    def __init__(self, *topics: str, prefetch_records: int, **options: Any) -> None:
        super().__init__(**options)
        if topics:  # through `subscribe`, so that rebalances go through the listener
            self.subscribe(topics)
        if prefetch_records < 1:
            raise ValueError("prefetch_records must be at least 1")
        self._prefetch_records = prefetch_records
        self._buffer: Records = {}
        self._fetch_error: BaseException | None = None
        self._arrived = asyncio.Event()
        self._wanted = asyncio.Event()
        self._asked_at = time.monotonic()
        self._drainer: asyncio.Task[None] | None = None
        self._to_commit: dict[TopicPartition, int] = {}
        self._committer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._drainer = asyncio.create_task(self._drain(), name="kafka-prefetch")

    async def stop(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
            self._drainer = None
        await self.flush_commits()
        await super().stop()

    def subscribe(
        self,
        topics: Iterable[str] = (),
        pattern: str | None = None,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        super().subscribe(
            topics=topics, pattern=pattern, listener=_ForgetOnRebalance(self, listener)
        )

    async def getmany(
        self,
        *partitions: TopicPartition,
        timeout_ms: int = 0,
        max_records: int | None = None,
    ) -> Records:
        """The records fetched so far (up to `max_records`), waiting up to
        `timeout_ms` for some when none has arrived."""
        if self._closed:
            raise ConsumerStoppedError()
        self._asked_at = time.monotonic()
        self._wanted.set()
        if not self._buffered and self._fetch_error is None and timeout_ms > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_ms / 1000):
                    await self._arrived.wait()
        if self._fetch_error is not None:
            error, self._fetch_error = self._fetch_error, None
            raise error
        # Like aiokafka: nothing is handed out while the group rebalances (the
        # records may belong to another member by the time they are processed).
        if self._subscription.reassignment_in_progress:
            await self._subscription.wait_for_assignment()
        return self._hand_out(set(partitions), max_records or self._max_poll_records)

    async def commit(self, offsets: Any = None) -> None:
        """Commit `offsets` and wait for it. Without them: commit, per assigned
        partition, the offset of the next record not handed out yet, in the
        background (one commit in flight at a time, carrying the newest offsets);
        a failed background commit is logged and superseded by the next one."""
        if offsets is not None:
            await super().commit(offsets)
            return
        self._to_commit = self._consumed_offsets()
        if self._to_commit and (self._committer is None or self._committer.done()):
            self._committer = asyncio.create_task(self._commit_pending(), name="kafka-commit")

    async def flush_commits(self) -> None:
        """Wait until the background commits are done."""
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)

    async def _commit_pending(self) -> None:
        while self._to_commit:
            offsets, self._to_commit = self._to_commit, {}
            assigned = self.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
            if not offsets:
                continue
            try:
                await super().commit(offsets)
            except Exception as error:  # the records are redelivered; the inbox skips them
                log.warning(
                    "offset commit failed", error_class=type(error).__name__, error=str(error)
                )

    def seek(self, partition: TopicPartition, offset: int) -> None:
        super().seek(partition, offset)
        self._forget((partition,))

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool:
        result: bool = await super().seek_to_beginning(*partitions)
        self._forget_seek(partitions)
        return result

    async def seek_to_end(self, *partitions: TopicPartition) -> bool:
        result: bool = await super().seek_to_end(*partitions)
        self._forget_seek(partitions)
        return result

    async def seek_to_committed(self, *partitions: TopicPartition) -> dict[TopicPartition, int]:
        result: dict[TopicPartition, int] = await super().seek_to_committed(*partitions)
        self._forget_seek(partitions)
        return result

    def _forget_seek(self, partitions: Iterable[TopicPartition]) -> None:
        self._forget(tuple(partitions) or tuple(self.assignment()))

    def _forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the buffered records of `partitions` (fetched from positions that
        no longer hold)."""
        for tp in partitions:
            self._buffer.pop(tp, None)
        self._wanted.set()

    def _hand_out(self, partitions: set[TopicPartition], limit: int) -> Records:
        taken: Records = {}
        assigned = self.assignment()
        for tp in list(self._buffer):
            if tp not in assigned:
                self._forget((tp,))
                continue
            if limit == 0 or (partitions and tp not in partitions):
                continue
            records = self._buffer[tp]
            taken[tp], rest = records[:limit], records[limit:]
            if rest:
                self._buffer[tp] = rest
            else:
                del self._buffer[tp]
            limit -= len(taken[tp])
        self._wanted.set()
        return taken

    def _consumed_offsets(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the offset of the next record to hand out: the
        first one buffered, else the fetch position (which only moves past records
        that were buffered)."""
        assignment = (
            self._subscription.subscription.assignment if self._subscription.subscription else None
        )
        if assignment is None:
            return {}
        offsets: dict[TopicPartition, int] = {}
        for tp, consumed in assignment.all_consumed_offsets().items():
            buffered = self._buffer.get(tp)
            offsets[tp] = buffered[0].offset if buffered else consumed.offset
        return offsets

    @property
    def _buffered(self) -> int:
        """Records fetched and not handed out yet (a few partitions' lists)."""
        return sum(map(len, self._buffer.values()))

    def _may_prefetch(self) -> bool:
        asked_lately = time.monotonic() - self._asked_at < self._max_poll_interval_ms / 2000
        return (
            self._buffered < self._prefetch_records and self._fetch_error is None and asked_lately
        )

    async def _drain(self) -> None:
        while True:
            if not self._may_prefetch():
                self._wanted.clear()
                await self._wanted.wait()
                continue
            try:
                fetched = await super().getmany(
                    timeout_ms=DRAIN_POLL_MS,
                    max_records=self._prefetch_records - self._buffered,
                )
            except ConsumerStoppedError:
                return
            except Exception as error:  # the application sees it on its next getmany
                self._fetch_error = error
                self._arrived.set()
                continue
            for tp, records in fetched.items():
                self._buffer.setdefault(tp, []).extend(records)
            if fetched:
                self._arrived.set()


class _ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before a rebalance, finishes the pending commit and drops the buffered
    records of every revoked partition (aiokafka rebalances eagerly: all of them,
    including those that come back, from their committed offsets), then calls the
    listener the consumer was subscribed with."""

    def __init__(self, consumer: PrefetchingConsumer, inner: ConsumerRebalanceListener | None):
        self._consumer = consumer
        self._inner = inner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._consumer.flush_commits()
        self._consumer._forget(revoked)
        if self._inner is not None:
            result = self._inner.on_partitions_revoked(revoked)
            if asyncio.iscoroutine(result):
                await result

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if self._inner is not None:
            result = self._inner.on_partitions_assigned(assigned)
            if asyncio.iscoroutine(result):
                await result
