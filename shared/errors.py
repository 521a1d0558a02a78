"""How failures are told apart: a message that can never succeed versus a fault
that will pass (database or broker unavailable)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
)


class PermanentError(Exception):
    """Processing this message can never succeed: it belongs in the dead-letter topic."""

    error_class = "PermanentError"

    def __init__(self, message: str, error_class: str | None = None) -> None:
        super().__init__(message)
        if error_class is not None:
            self.error_class = error_class


class UnknownTenant(PermanentError):
    """The event names a tenant this system does not know."""

    error_class = "UnknownTenant"


class ReferenceNotFound(PermanentError):
    """The event refers to a row that does not exist in its tenant (or belongs to another)."""

    error_class = "ReferenceNotFound"


_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset
    asyncio.TimeoutError,
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    # A backend terminated mid-statement can surface on the connection's next use
    # as a client-side state error ("cannot switch to state ..."); the pool then
    # discards that connection, and the retry gets a fresh one.
    asyncpg.exceptions.InternalClientError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
)


def is_transient(error: BaseException) -> bool:
    """True for faults to retry with backoff rather than dead-letter: the ones above,
    and every Kafka error the client marks retriable (no leader for a partition right
    after a broker restart, a coordinator moving, ...)."""
    if isinstance(error, KafkaError) and error.retriable:
        return True
    return isinstance(error, _TRANSIENT)
