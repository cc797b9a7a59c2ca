"""The preprocess stage's streaming loop: ``sensor-raw`` -> ``sensor-clean`` / ``sensor-dlq``.

`PreprocessStage.run` repeats one synchronous cycle per batch:

1. ``consume`` up to ``batch_size`` records from ``sensor-raw`` (consumer group
   ``lakeless-preprocess`` by default, auto-commit off);
2. one `Preprocessor.process` call for the whole batch;
3. produce every outcome: clean records to ``sensor-clean`` (key = car id, record timestamp =
   the input record's timestamp, value = `lakeless.schema.encode_clean`), rejected records to
   ``sensor-dlq`` (key, value and headers unchanged, ``lakeless.*`` headers appended; see
   `lakeless.preprocess.dlq`); filtered records produce nothing and are only counted;
4. ``flush`` until every output has a delivery report, and stop with `PreprocessError` if any
   report carries an error;
5. commit, synchronously, ``last offset + 1`` of every partition in the batch.

Delivery guarantee: at-least-once. Offsets are committed only after all outputs of their batch
are acknowledged (idempotent producer, ``acks=all``), so a crash between produce and commit
makes the next owner of the partition produce the batch again; duplicates are identified
downstream by ``(car_id, seq)``. Nothing is ever dropped silently: every record read ends up
counted in exactly one of clean, dead-lettered or filtered (`PreprocessStats`).

Rebalances: the cycle is synchronous, so nothing is in flight whenever ``consume`` runs, and
``consume`` (or ``close``) is where librdkafka calls the rebalance callbacks. When partitions
are revoked, the previous batch is therefore already produced, acknowledged and committed, and
the revoke callback has nothing to finish. A commit refused because the group moved on (the
partitions went to another member meanwhile) is logged and costs only duplicates. The price of
this simplicity is that consuming and producing do not overlap; batches amortise it.

Time checks: by default (``time_reference="record"``) the validator's ``ts_in_future`` and
``ts_too_old`` checks compare event time with the record timestamp, capped at the wall clock
(``min(record timestamp, now)``): future events are still caught even though the bridge, the
importer and the simulator stamp records with the event's own ``ts``; a record stamped at
arrival (the bridge does so for an implausible ``ts``) is judged against its ingestion time;
and replaying ``sensor-raw`` later gives the same verdicts as the first pass. With
``time_reference="wall_clock"`` the validator gets no timestamps: an event rejected as
``ts_in_future`` today would pass on a replay once its time has come.

Example:
    >>> PreprocessSettings().group_id
    'lakeless-preprocess'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as ConfluentError
from pydantic import BaseModel, ConfigDict, Field

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import (
    ConsumeErrors,
    commit_sync,
    make_consumer,
    make_producer,
    next_offsets,
)
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.preprocess.dlq import dead_letter
from lakeless.preprocess.process import Filtered, Preprocessor
from lakeless.preprocess.stats import PreprocessStats
from lakeless.preprocess.validate import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FUTURE_MS,
    DEFAULT_MIN_TS_MS,
    Rejection,
    Validator,
)
from lakeless.preprocess.where import compile_filter
from lakeless.schema import CLEAN_DTYPE

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "PreprocessError",
    "PreprocessSettings",
    "PreprocessStage",
    "run_preprocess",
]

logger = logging.getLogger(__name__)

#: Records per batch. A batch pays a fixed ~10 ms (the flush's round trip to ``acks=all`` plus
#: the synchronous commit) on top of ~10 us per record (consume; validate and encode, about
#: 6 us; produce). On the 2-core test machine, 100 k simulated records over 6 partitions ran at
#: 90-94 k/s with 2,000, 91-100 k/s with 5,000 and 97 k/s with 10,000 (startup included; 500
#: gave 27 k/s). 5,000 sits on the plateau while a batch stays small: a few MB of memory and
#: at most 5,000 records produced again after a crash.
DEFAULT_BATCH_SIZE: Final = 5000

#: Where the car id of an encoded clean record starts (after the version byte and the numeric
#: block, preceded by its uint16 length); see `lakeless.schema`.
_CAR_ID_AT: Final = 1 + CLEAN_DTYPE.itemsize


class PreprocessError(KafkaError):
    """The preprocess stage cannot go on: a fatal Kafka error, or outputs Kafka refused."""


class PreprocessSettings(BaseModel):
    """The stage's own settings (connections and topic names come from `Settings`).

    Attributes:
        group_id: consumer group; processes in one group split the partitions.
        batch_size: most records per consume / produce / commit cycle.
        poll_timeout: seconds one ``consume`` call waits for the first record.
        where: filter expression; records for which it is false are counted, not produced.
        max_bytes: longest accepted raw value (``too_large`` above).
        max_future_ms: allowed event-time skew ahead of the wall clock; ``None``: unchecked.
        max_age_ms: oldest accepted event time relative to the wall clock; ``None``: any age.
        min_ts_ms: earliest accepted event time; ``None``: unchecked.
        time_reference: what event-time checks compare with: ``wall_clock`` or ``record``
            (the record timestamp, never later than the wall clock); see the module docstring.
        linger_ms: producer ``linger.ms`` (the flush at the end of a batch sends at once anyway).
        join_timeout: seconds ``until_idle`` waits for the first partition assignment (or a
            consumer error) before its clock starts; joining a group takes seconds, more on
            a fresh cluster.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_id: str = Field(default="lakeless-preprocess", min_length=1)
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=100_000)
    poll_timeout: float = Field(default=0.5, gt=0)
    where: str | None = None
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    max_future_ms: int | None = Field(default=DEFAULT_MAX_FUTURE_MS, ge=0)
    max_age_ms: int | None = Field(default=None, ge=0)
    min_ts_ms: int | None = DEFAULT_MIN_TS_MS
    time_reference: Literal["wall_clock", "record"] = "record"
    linger_ms: int = Field(default=5, ge=0)
    join_timeout: float = Field(default=60.0, gt=0)

    def preprocessor(self) -> Preprocessor:
        """A `Preprocessor` with these validation rules and filter.

        Raises:
            lakeless.preprocess.FilterError: ``where`` does not compile.
        """
        validator = Validator(
            max_bytes=self.max_bytes,
            max_future_ms=self.max_future_ms,
            max_age_ms=self.max_age_ms,
            min_ts_ms=self.min_ts_ms,
        )
        return Preprocessor(validator, compile_filter(self.where) if self.where else None)


@dataclass
class _Deliveries:
    """Delivery reports of one batch, counted by the producer's callback."""

    acked: int = 0
    failed: int = 0
    first_error: ConfluentError | None = None
    failed_topics: set[str] = field(default_factory=set)

    def __call__(self, error: ConfluentError | None, message: Message) -> None:
        if error is None:
            self.acked += 1
            return
        self.failed += 1
        self.failed_topics.add(message.topic())
        if self.first_error is None:
            self.first_error = error


class PreprocessStage:
    """Validates ``sensor-raw`` into ``sensor-clean`` and ``sensor-dlq``; `run` until a limit.

    Args:
        settings: connections and topic names (``topics.raw``, ``topics.clean``, ``topics.dlq``).
        preprocess: the stage's own settings.

    Attributes:
        stats: counts of every record whose outputs Kafka acknowledged (all runs of this object).
        stopped_by: why the last `run` stopped.
        seconds: wall time of the last `run`.
        batches: batches processed by the last `run`.
        received: records read and acknowledged in the last `run`.
        commit_failures: commits refused because of a rebalance (their records may repeat).

    Raises:
        lakeless.preprocess.FilterError: ``preprocess.where`` does not compile.
    """

    def __init__(self, settings: Settings, preprocess: PreprocessSettings | None = None) -> None:
        self.settings = settings
        self.preprocess = preprocess or PreprocessSettings()
        self.stats = PreprocessStats()
        self.stopped_by = ""
        self.seconds = 0.0
        self.batches = 0
        self.received = 0
        self.commit_failures = 0
        self._preprocessor = self.preprocess.preprocessor()
        self._stopper: Stopper | None = None
        self._errors = ConsumeErrors(PreprocessError)
        self._joined = False

    @property
    def rate(self) -> float:
        """Records per wall second in the last `run` (group join included)."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def request_stop(self) -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        if self._stopper is not None:
            self._stopper.request_stop()

    def run(self, limits: RunLimits | None = None) -> PreprocessStats:
        """Process batches until a limit in ``limits`` is reached or SIGTERM/SIGINT arrives.

        ``limits.count`` counts records read (clean, dead-lettered and filtered alike); a run
        never reads past it, so the next run of the group starts right after. ``until_idle``
        counts from the last record read or the last partition assignment, whichever is later;
        before the first assignment it waits up to ``join_timeout`` seconds (or the first
        consumer error, e.g. a missing topic) before it starts counting.

        Returns:
            `stats`, the counts over every run of this object.

        Raises:
            PreprocessError: a fatal consumer or producer error, or an output that Kafka did not
                accept; the batch's offsets are then not committed.
        """
        stopper = Stopper(limits)
        self._stopper = stopper
        config = self.preprocess
        kafka = self.settings.kafka
        raw = self.settings.topics.raw
        consumer = make_consumer(kafka, config.group_id)
        producer = make_producer(kafka, linger_ms=config.linger_ms)
        self.batches = self.received = 0
        self._joined = False
        started = time.monotonic()
        try:
            consumer.subscribe(
                [raw],
                on_assign=lambda _c, parts: self._on_assign(stopper, parts),
                on_revoke=lambda _c, parts: self._on_revoke(parts),
                on_lost=lambda _c, parts: self._on_revoke(parts, lost=True),
            )
            with stop_on_signals(stopper):
                while True:
                    # Joining the group is not idleness (on a fresh cluster it includes creating
                    # __consumer_offsets): the idle clock starts at the first assignment or
                    # consumer error, or after join_timeout.
                    if not self._joined and time.monotonic() - started < config.join_timeout:
                        stopper.saw_input()
                    if stopper.done:
                        break
                    remaining = stopper.remaining
                    wanted = (
                        config.batch_size
                        if remaining is None
                        else min(config.batch_size, remaining)
                    )
                    messages = self._consume(consumer, wanted)
                    if messages:
                        self._process(messages, consumer, producer)
                        stopper.add(len(messages))
                        self.batches += 1
                        self.received += len(messages)
            self.stopped_by = stopper.reason or "stopped"
            logger.info("preprocess stopping (%s): %s", self.stopped_by, self.stats.to_json())
        finally:
            self.seconds = time.monotonic() - started
            self._stopper = None
            producer.flush(10)  # only filled while a batch failed; its offsets stay uncommitted
            consumer.close()
        return self.stats

    # ---- one batch --------------------------------------------------------------------------

    def _consume(self, consumer: Any, wanted: int) -> list[Message]:
        messages = self._errors.consume(consumer, wanted, self.preprocess.poll_timeout)
        self._joined = self._joined or self._errors.seen  # e.g. a missing topic
        return messages

    def _process(self, messages: list[Message], consumer: Any, producer: Any) -> None:
        values = [m.value() for m in messages]
        keys = [m.key() for m in messages]
        timestamps = None  # the wall clock is the reference time (see the module docstring)
        if self.preprocess.time_reference == "record":
            timestamps = [m.timestamp()[1] for m in messages]  # -1 (none): the wall clock
        pre = self._preprocessor
        pre.stats = batch_stats = PreprocessStats()
        outcomes = pre.process(values, keys, timestamps)
        deliveries = _Deliveries()
        self._produce(messages, keys, outcomes, producer, deliveries)
        self._await(producer, deliveries, len(outcomes) - batch_stats.filtered)
        self.stats.merge(batch_stats)
        self._commit(consumer, messages)

    def _produce(
        self,
        messages: Sequence[Message],
        keys: Sequence[bytes | None],
        outcomes: Sequence[bytes | Rejection | Filtered],
        producer: Any,
        deliveries: _Deliveries,
    ) -> None:
        topics = self.settings.topics
        clean, dlq = topics.clean, topics.dlq
        produce = producer.produce
        for message, key, outcome in zip(messages, keys, outcomes, strict=True):
            if isinstance(outcome, bytes):
                if key is None:  # a present key equals car_id: the validator checked it
                    size = int.from_bytes(outcome[_CAR_ID_AT : _CAR_ID_AT + 2], "little")
                    key = outcome[_CAR_ID_AT + 2 : _CAR_ID_AT + 2 + size]
                # -1 (not available) becomes 0: the producer stamps the record now.
                timestamp = max(message.timestamp()[1], 0)
                try:
                    produce(clean, outcome, key, timestamp=timestamp, on_delivery=deliveries)
                except (BufferError, KafkaException):  # the slow path retries or explains
                    _produce_when_room(
                        producer, clean, outcome, key, deliveries, timestamp=timestamp
                    )
            elif isinstance(outcome, Rejection):
                kind, timestamp = message.timestamp()
                letter = dead_letter(
                    outcome,
                    value=message.value(),
                    key=key,
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                    timestamp=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
                    headers=message.headers(),
                )
                # Stamped now, so the DLQ's retention counts from the rejection; the source
                # timestamp travels in the ``lakeless.source.timestamp`` header.
                _produce_when_room(
                    producer, dlq, letter.value, letter.key, deliveries, headers=letter.headers
                )

    def _await(self, producer: Any, deliveries: _Deliveries, expected: int) -> None:
        """Block until every output of the batch has its delivery report."""
        started = time.monotonic()
        warned = started
        while deliveries.acked + deliveries.failed < expected:
            # librdkafka's message.timeout.ms bounds this wait: a record it cannot deliver in
            # time gets an error report.
            try:
                producer.flush(1.0)
            except KafkaException as exc:
                raise PreprocessError(f"producer failed: {exc}") from exc
            now = time.monotonic()
            if now - warned >= 30:
                warned = now
                logger.warning(
                    "waited %.0f s for Kafka to acknowledge %d of %d outputs",
                    now - started,
                    expected - deliveries.acked - deliveries.failed,
                    expected,
                )
        if deliveries.failed:
            error = deliveries.first_error
            detail = error.str() if error is not None else "unknown error"
            raise PreprocessError(
                f"Kafka did not accept {deliveries.failed} of {expected} outputs to "
                f"{', '.join(sorted(deliveries.failed_topics))} ({detail}); the batch's offsets "
                "are not committed, so it will be processed again"
            )

    def _commit(self, consumer: Any, messages: Sequence[Message]) -> None:
        offsets = next_offsets(messages)
        if not commit_sync(consumer, offsets, len(messages), PreprocessError):
            self.commit_failures += 1

    # ---- rebalance callbacks (called inside consume) ----------------------------------------

    def _on_assign(self, stopper: Stopper, partitions: list[TopicPartition]) -> None:
        self._joined = True
        stopper.saw_input()  # the idle clock starts now
        logger.info("assigned %s", _describe(partitions))

    def _on_revoke(self, partitions: list[TopicPartition], lost: bool = False) -> None:
        # Nothing to finish: the previous batch was committed before consume() was called.
        logger.info("%s %s", "lost" if lost else "revoked", _describe(partitions))


def _produce_when_room(
    producer: Any,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    deliveries: _Deliveries,
    **kwargs: Any,
) -> None:
    """Produce one record, waiting while librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=deliveries, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)  # serves delivery reports, which frees room
        except KafkaException as exc:
            raise PreprocessError(f"cannot produce to {topic}: {exc}") from exc


def _describe(partitions: list[TopicPartition]) -> str:
    if not partitions:
        return "no partitions"
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in by_topic.items())


def run_preprocess(
    settings: Settings,
    preprocess: PreprocessSettings | None = None,
    limits: RunLimits | None = None,
) -> PreprocessStats:
    """Run the preprocess stage once: ``PreprocessStage(settings, preprocess).run(limits)``."""
    return PreprocessStage(settings, preprocess).run(limits)
