"""What a stage plugs into the `lakeless.kafka.BatchLoop`: a step, its result, the loop's config."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import Message, TopicPartition

from lakeless._options import LoopOptions

__all__ = ["BaseStep", "BatchResult", "LoopConfig", "Output"]

#: One record to produce: topic, value, key, timestamp (0: now), headers.
Output = tuple[str, bytes | None, bytes | None, int, list[tuple[str, bytes]] | None]


@dataclass
class BatchResult:
    """What a step made of one batch.

    Attributes:
        outputs: the records to produce.
        dead_lettered: inputs sent to a dead-letter topic.
        filtered: inputs dropped on purpose (counted, never produced).
        invalid: inputs skipped because they could not be read (logged by the step).
        payload: anything the step wants back in `BaseStep.committed`.
    """

    outputs: list[Output] = field(default_factory=list)
    dead_lettered: int = 0
    filtered: int = 0
    invalid: int = 0
    payload: Any = None


class BaseStep(ABC):
    """A stage's pure part, plugged into `BatchLoop`.

    Attributes:
        name: the stage's name (logs, metrics).
    """

    name: str = "stage"

    def ready(self) -> bool:
        """Whether the step can process a batch now (``False``: the loop holds)."""
        return True

    def waiting_for(self) -> str:
        """What the step waits for while not `ready` (for the log)."""
        return "the step to become ready"

    def before_batch(self) -> None:  # noqa: B027 (an optional hook)
        """Called between two batches (e.g. to swap in a newly promoted model)."""

    @abstractmethod
    def process(self, messages: list[Message]) -> BatchResult:
        """Turn consumed records into outputs; must not block on Kafka."""

    def committed(self, result: BatchResult, n: int) -> None:  # noqa: B027 (an optional hook)
        """The batch of ``n`` records behind ``result`` is committed: count it."""

    def progress(self) -> dict[str, Any]:
        """Extra fields for the periodic progress line."""
        return {}


@dataclass(frozen=True)
class LoopConfig:
    """How the loop consumes, commits and stays alive (from a stage's settings).

    Attributes:
        group_id: consumer group.
        topics: topics to subscribe to.
        batch_size: most records per batch.
        poll_timeout: seconds to wait for the first record of a batch.
        batch_ms: after the first record, ms to wait for more (0: take what is buffered).
        guarantee: ``at-least-once`` (commit after acks) or ``exactly-once`` (transactions).
        transactional_id: the producer's id (exactly-once).
        instance_id: static group membership id (``group.instance.id``), if any.
        produces: whether the step writes to Kafka (a sink-only step needs no producer).
        isolation_level: the consumer's (``read_committed`` to skip aborted records).
        keepalive_after: seconds of waiting for acks after which partitions are paused and
            the consumer polled.
        max_poll_interval_ms: the consumer's ``max.poll.interval.ms``.
        transaction_timeout_ms: the producer's ``transaction.timeout.ms``.
        linger_ms: the producer's ``linger.ms``.
        pipeline_depth: batches that may wait for their acknowledgements while the next is
            read and processed (at-least-once; their offsets are committed asynchronously, in
            order, once acknowledged; 1: each batch is committed before the next is read).
        join_timeout: seconds ``until_idle`` waits for the first assignment before counting.
        create_hint: the command that creates the topics, for the error when one is missing.
        guard_outputs: output topics that a group which never committed must find empty (else
            it would write its whole input into them again), unless ``reprocess``.
        reprocess: allow that.
        log_interval: seconds between two progress lines (0: none).
        lag_interval: seconds between two consumer-lag refreshes.
        consumer: extra librdkafka consumer properties.
        producer: extra librdkafka producer properties.
    """

    group_id: str
    topics: tuple[str, ...]
    batch_size: int = 5000
    poll_timeout: float = 0.5
    batch_ms: int = 0
    guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    transactional_id: str | None = None
    instance_id: str | None = None
    produces: bool = True
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    keepalive_after: float = 1.0
    max_poll_interval_ms: int = 300_000
    transaction_timeout_ms: int = 60_000
    linger_ms: int = 5
    pipeline_depth: int = 1
    join_timeout: float = 60.0
    create_hint: str = "lakeless topics create"
    guard_outputs: tuple[str, ...] = ()
    reprocess: bool = False
    log_interval: float = 0.0
    lag_interval: float = 5.0
    consumer: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)

    @property
    def exactly_once(self) -> bool:
        """Whether batches are Kafka transactions."""
        return self.guarantee == "exactly-once"

    @classmethod
    def from_options(
        cls, options: LoopOptions, *, group_id: str, topics: tuple[str, ...], **extra: Any
    ) -> LoopConfig:
        """The configuration a stage's `lakeless._options.LoopOptions` give, plus ``extra``."""
        return cls(
            group_id=group_id,
            topics=topics,
            batch_size=options.batch_size,
            poll_timeout=options.poll_timeout,
            batch_ms=options.batch_ms,
            linger_ms=options.linger_ms,
            pipeline_depth=options.pipeline_depth,
            join_timeout=options.join_timeout,
            keepalive_after=options.keepalive_after,
            max_poll_interval_ms=options.max_poll_interval_ms,
            log_interval=options.log_interval,
            **extra,
        )


@dataclass
class Inflight:
    """One batch whose outputs are produced and not yet committed (the loop's own state)."""

    messages: list[Message]
    result: BatchResult
    first: dict[tuple[str, int], int]
    last: dict[tuple[str, int], int]
    expected: int
    started: float
    acked: int = 0
    failed: int = 0
    first_error: ConfluentError | None = None
    failed_topics: set[str] = field(default_factory=set)
    finished: bool = False
    committed: bool = False

    def on_delivery(self, error: ConfluentError | None, message: Message) -> None:
        if error is None:
            self.acked += 1
            return
        self.failed += 1
        self.failed_topics.add(message.topic())
        if self.first_error is None:
            self.first_error = error

    @property
    def reported(self) -> bool:
        return self.acked + self.failed >= self.expected

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o + 1) for (t, p), o in self.last.items()]
