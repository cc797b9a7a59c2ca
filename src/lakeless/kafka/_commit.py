"""Committing a batch: offsets (synchronously through a failover, or pipelined) or a transaction.

`commit_sync` retries a commit while the group coordinator moves; `commit_async` is the
pipelined form (a failure reaches the consumer's ``on_commit`` and costs duplicates only);
`commit_transaction` puts a batch's offsets into its transaction and commits it, retrying
what a coordinator failover makes retriable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, TopicPartition

from lakeless.errors import LakelessError

__all__ = ["COMMIT_RETRY_S", "commit_sync", "commit_transaction"]

logger = logging.getLogger(__name__)

#: Commit failures that only mean the group rebalanced under us: the new owner reprocesses.
_REBALANCE_CODES = frozenset(
    {
        ConfluentError.ILLEGAL_GENERATION,
        ConfluentError.UNKNOWN_MEMBER_ID,
        ConfluentError.REBALANCE_IN_PROGRESS,
        ConfluentError._ASSIGNMENT_LOST,
        ConfluentError._STATE,
    }
)


#: Commit failures that pass by themselves: the group coordinator is moving to another broker
#: or loading the group (a broker died or restarted), or no broker answered in time.
_TRANSIENT_CODES = frozenset(
    {
        ConfluentError.COORDINATOR_LOAD_IN_PROGRESS,
        ConfluentError.COORDINATOR_NOT_AVAILABLE,
        ConfluentError.NOT_COORDINATOR,
        ConfluentError.REQUEST_TIMED_OUT,
        ConfluentError.NETWORK_EXCEPTION,
        ConfluentError._TIMED_OUT,
        ConfluentError._TRANSPORT,
        ConfluentError._WAIT_COORD,
        ConfluentError._ALL_BROKERS_DOWN,
    }
)
#: How long a commit is retried through a broker outage before the stage gives up.
COMMIT_RETRY_S = 300.0


def commit_sync(
    consumer: Any,
    offsets: list[TopicPartition],
    records: int,
    error_type: type[LakelessError],
    retry_for: float = COMMIT_RETRY_S,
) -> bool:
    """Commit ``offsets`` synchronously, retrying through a broker failover.

    A commit refused because the group coordinator is moving or loading (a broker died or
    came back) is retried for up to ``retry_for`` seconds: committing the same offsets again
    is harmless, and giving up would stop the stage over an outage that Kafka rides out.

    Returns:
        ``False`` when the group rebalanced under us (logged; the partitions' new owner
        processes those ``records`` again), ``True`` when committed.

    Raises:
        LakelessError: (``error_type``) the commit failed for another reason, or kept failing
            for ``retry_for`` seconds.
    """
    deadline = time.monotonic() + retry_for
    logged = 0.0
    while True:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, ConfluentError) and error.code() in _REBALANCE_CODES:
                logger.warning(
                    "commit refused after a rebalance (%s); the partitions' new owner "
                    "processes %d records again",
                    error.str(),
                    records,
                )
                return False
            transient = isinstance(error, ConfluentError) and (
                error.code() in _TRANSIENT_CODES or error.retriable()
            )
            now = time.monotonic()
            if not transient or now >= deadline:
                raise error_type(f"commit of {offsets} failed: {exc}") from exc
            if now - logged >= 10.0:
                logged = now
                logger.warning("commit not possible yet (%s); retrying", exc)
            time.sleep(0.2)
            continue
        return True


def commit_transaction(
    producer: Any, consumer: Any, offsets: list[TopicPartition], timeout: float
) -> None:
    """Add ``offsets`` to the producer's open transaction and commit it.

    Both calls may fail retriably while a broker (the transaction or group coordinator) fails
    over; the transaction stays open, so they are retried until ``timeout`` seconds passed.

    Raises:
        KafkaException: not retriable, or still failing at ``timeout`` (the caller aborts when
            the error says the transaction requires it).
    """
    deadline = time.monotonic() + timeout
    _retry_retriable(
        "send_offsets_to_transaction",
        lambda: producer.send_offsets_to_transaction(
            offsets, consumer.consumer_group_metadata(), timeout
        ),
        deadline,
    )
    _retry_retriable("commit_transaction", lambda: producer.commit_transaction(timeout), deadline)


def _retry_retriable(what: str, call: Callable[[], Any], deadline: float) -> None:
    """``call()``; again after a retriable `KafkaException` until ``deadline`` (monotonic)."""
    while True:
        try:
            call()
            return
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, ConfluentError) and error.retriable()
            if not retriable or time.monotonic() >= deadline:
                raise
            logger.warning("%s failed, retrying: %s", what, exc)
            time.sleep(0.5)
