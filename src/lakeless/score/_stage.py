"""The score stage's streaming loop: ``sensor-clean`` -> ``anomalies`` (and ``scores``).

`ScoreStage.run` repeats one synchronous cycle per batch:

1. between two batches, `lakeless.registry.RegistryFollower.poll`: when another version of the
   model became live and passed validation, the `ScorerFactory` builds its scorer and it
   replaces the current one (a model refused by the follower or the factory is logged and the
   current model keeps scoring); so a batch is always scored by one model, and every output
   names the version that produced it (with a `RemoteScorer`, e.g. ``--via URL``, the model
   server picks the model: the outputs name the version and use the threshold it reports);
2. ``consume`` up to ``batch_size`` records, waiting at most ``batch_ms`` (whichever first);
3. decode the batch with one ``numpy.frombuffer`` (`lakeless.schema.decode_clean_batch`), one
   `BatchScorer.score` call, ``anomaly = score > threshold``;
4. produce an `Anomaly` per anomaly to ``anomalies`` and, with ``all_scores``, a `Score` per
   event to ``scores`` (key = car id, timestamp = event time);
5. at-least-once: wait until every output is acknowledged, then commit ``last offset + 1`` of
   every partition of the batch synchronously; exactly-once: the outputs and the offsets are one
   Kafka transaction (``send_offsets_to_transaction`` with the consumer's group metadata, then
   ``commit_transaction``), so ``read_committed`` readers see each input's outputs exactly once.

Liveness: nothing in a cycle may keep the consumer from polling for ``max.poll.interval.ms``.
While it waits longer than ``keepalive_after`` seconds for acknowledgements, and while it waits
for a first live model, the stage pauses its assigned partitions and keeps polling the
consumer, so the group does not evict it; records returned meanwhile are kept for the next
batch. A rebalance can therefore happen mid-batch (inside that poll): the revoke callback then
finishes the in-flight batch (waits for acknowledgements and commits, or commits the
transaction) before the partitions go; when partitions are *lost* instead, the batch is not
committed (its transaction aborted), and their new owner processes it again.

Exactly-once and restarts: the producer's ``transactional.id`` is
``<group>.<instance>.<index>`` (instance: ``ScoreSettings.instance``, the host name by
default; index: the worker number of ``--processes``). A restarted scorer with the same id
fences its predecessor and aborts its open transaction at once; two scorers that share an id
fence each other, so give every instance on one host its own ``instance``. An explicit
``instance`` also makes the consumer a static group member (``group.instance.id``, the same
string): a scorer restarted within ``session.timeout.ms`` (45 s) takes its partitions back
without a rebalance, instead of waiting for the group to expire its dead predecessor.

Example:
    >>> ScoreSettings().group_id, ScoreSettings().guarantee
    ('lakeless-score', 'at-least-once')
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, Message, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import ConsumeErrors, commit_sync, make_consumer, make_producer
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.model.onnx import ModelLoadError
from lakeless.registry import ModelRecord, RegistryFollower
from lakeless.schema import CLEAN_DTYPE, CLEAN_VERSION, FEATURES, decode_clean, decode_clean_batch
from lakeless.score._metrics import ScoreMetrics
from lakeless.score._output import Anomaly, Score, encode_output, top_features
from lakeless.score._scorer import (
    BatchScorer,
    OnnxScorerFactory,
    RemoteScorer,
    ScoredBy,
    ScorerFactory,
)
from lakeless.score._stats import ScoreStats

__all__ = [
    "DEFAULT_BATCH_MS",
    "DEFAULT_BATCH_SIZE",
    "ScoreError",
    "ScoreSettings",
    "ScoreStage",
    "run_score",
]

logger = logging.getLogger(__name__)

#: Records per batch. Measured on the shared 2-core test machine (one process, 200 k events,
#: ~1 % anomalies): 500: 136 k/s (3.7 ms a batch), 1,000-2,000: 140-150 k/s (7-14 ms),
#: 5,000: 137-148 k/s (33-36 ms), 10,000: 143 k/s (67 ms); with every event an anomaly:
#: 500: 63 k/s, 2,000: 81 k/s, 5,000: 84 k/s, 10,000: 76 k/s. The fixed cost per batch (acks
#: round trip, commit) is amortised from ~1,000; 5,000 is best when outputs are heavy and keeps
#: a batch at ~1 MB and under 40 ms.
DEFAULT_BATCH_SIZE: Final = 5000
#: Most milliseconds a batch stays open waiting for records (latency bound at low rates).
DEFAULT_BATCH_MS: Final = 100

_MIN_LEN: Final = 1 + CLEAN_DTYPE.itemsize + 6
_ERROR_LOG_INTERVAL: Final = 10.0
_VERSION_BYTE: Final = bytes((CLEAN_VERSION,))
_BLOCK_END: Final = 1 + CLEAN_DTYPE.itemsize
#: Where the features start in a record: version byte, then ts and seq (int64 each).
_FEATURES_AT: Final = 1 + 8 + 8


def _decode_numeric(values: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The numeric block (`CLEAN_DTYPE`) and the float32 feature matrix of valid records.

    One join and one ``frombuffer``; the features are one strided view of the same buffer (the
    18 float64 sit side by side in every record), cast once, instead of 18 field copies.
    """
    block = b"".join([value[1:_BLOCK_END] for value in values])
    numeric = np.frombuffer(block, dtype=CLEAN_DTYPE)
    view = np.ndarray(
        (len(values), len(FEATURES)),
        dtype="<f8",
        buffer=block,
        offset=_FEATURES_AT - 1,
        strides=(CLEAN_DTYPE.itemsize, 8),
    )
    return numeric, view.astype(np.float32)


class ScoreError(KafkaError):
    """The score stage cannot go on: a fatal Kafka error, or outputs Kafka refused."""


class ScoreSettings(BaseModel):
    """The stage's own settings (connections and topic names come from `Settings`).

    Attributes:
        group_id: consumer group; every process and instance in it splits the partitions.
        model: registry name of the model to follow.
        guarantee: ``at-least-once`` or ``exactly-once`` (Kafka transactions).
        batch_size: most records per batch.
        batch_ms: most milliseconds a batch waits for records.
        top_k: features named per anomaly.
        all_scores: also write every score to ``topics.scores``.
        intra_op_threads: ONNX Runtime threads per process (default scorer).
        instance: this scorer's name in its ``transactional.id`` (default: the host name);
            when set, also its static ``group.instance.id``.
        metrics_port: Prometheus port (0: no endpoint); worker ``i`` uses ``port + i``.
        log_interval: seconds between two progress log lines (0: none).
        lag_interval: seconds between two consumer-lag refreshes.
        keepalive_after: seconds of waiting for acknowledgements after which the partitions
            are paused and the consumer polled.
        max_poll_interval_ms: the consumer's ``max.poll.interval.ms``.
        transaction_timeout_ms: the producer's ``transaction.timeout.ms`` (exactly-once).
        registry_timeout: seconds the registry catch-up or one model load may take.
        linger_ms: producer ``linger.ms``.
        join_timeout: seconds ``until_idle`` waits for the first assignment before counting.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_id: str = Field(default="lakeless-score", min_length=1)
    model: str = Field(default="car-autoencoder", min_length=1)
    guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=100_000)
    batch_ms: int = Field(default=DEFAULT_BATCH_MS, ge=1, le=60_000)
    top_k: int = Field(default=3, ge=0, le=len(FEATURES))
    all_scores: bool = False
    intra_op_threads: int = Field(default=1, ge=0)
    instance: str | None = None
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_interval: float = Field(default=10.0, ge=0)
    lag_interval: float = Field(default=5.0, gt=0)
    keepalive_after: float = Field(default=1.0, gt=0)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    registry_timeout: float = Field(default=30.0, gt=0)
    linger_ms: int = Field(default=5, ge=0)
    join_timeout: float = Field(default=60.0, gt=0)

    @property
    def exactly_once(self) -> bool:
        """Whether batches are Kafka transactions."""
        return self.guarantee == "exactly-once"

    def transactional_id(self, index: int = 0) -> str:
        """``<group>.<instance>.<index>``: stable across restarts of the same worker."""
        return f"{self.group_id}.{self.instance or socket.gethostname()}.{index}"


@dataclass
class _Live:
    """The model scoring now."""

    record: ModelRecord
    scorer: BatchScorer


@dataclass
class _Batch:
    """One batch whose outputs are produced and not yet committed."""

    n: int
    anomalies: int
    ref: str
    first: dict[tuple[str, int], int]
    last: dict[tuple[str, int], int]
    expected: int
    acked: int = 0
    failed: int = 0
    first_error: ConfluentError | None = None
    finished: bool = False
    committed: bool = False

    def on_delivery(self, error: ConfluentError | None, _message: Message) -> None:
        if error is None:
            self.acked += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = error

    @property
    def reported(self) -> bool:
        return self.acked + self.failed >= self.expected

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o + 1) for (t, p), o in self.last.items()]


@dataclass
class _Clock:
    """Periodic work (lag refresh, progress line)."""

    last_lag: float = 0.0
    last_log: float = field(default_factory=time.monotonic)
    events_at_log: int = 0


class ScoreStage:
    """Scores ``sensor-clean`` with the live model of the registry; `run` until a limit.

    Args:
        settings: connections and topics (``clean``, ``models``, ``anomalies``, ``scores``).
        score: the stage's own settings.
        scorer_factory: builds the scorer of each live model (`OnnxScorerFactory` by default,
            with ``score.intra_op_threads``).
        index: worker number within ``--processes`` (part of ``transactional.id`` and of the
            metrics port).

    Attributes:
        stats: committed counts over every run of this object.
        live: the record of the model scoring now, if any.
    """

    def __init__(
        self,
        settings: Settings,
        score: ScoreSettings | None = None,
        *,
        scorer_factory: ScorerFactory | None = None,
        index: int = 0,
    ) -> None:
        self.settings = settings
        self.config = score or ScoreSettings()
        self.factory: ScorerFactory = scorer_factory or OnnxScorerFactory(
            self.config.intra_op_threads
        )
        self.index = index
        self.stats = ScoreStats()
        self.metrics = ScoreMetrics()
        self._live: _Live | None = None
        self._stopper: Stopper | None = None
        self._inflight: _Batch | None = None
        self._carry: list[Message] = []
        self._paused: list[TopicPartition] = []
        self._consumer: Any = None
        self._producer: Any = None
        self._joined = False
        self._clock = _Clock()
        self._errors = ConsumeErrors(ScoreError)
        self._invalid_logged = 0.0

    @property
    def live(self) -> ModelRecord | None:
        """The record of the model scoring now."""
        return self._live.record if self._live is not None else None

    def request_stop(self) -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        if self._stopper is not None:
            self._stopper.request_stop()

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, limits: RunLimits | None = None) -> ScoreStats:
        """Score batches until a limit in ``limits`` is reached or SIGTERM/SIGINT arrives.

        The current batch is finished and committed before it returns. ``limits.count`` counts
        records read; ``until_idle`` counts from the last record read or the last assignment
        (waiting for a first live model is idle too).

        Returns:
            `stats`, the committed counts over every run of this object.

        Raises:
            ScoreError: a fatal Kafka error, or outputs Kafka did not accept (their offsets are
                then not committed).
            lakeless.registry.RegistryError: the registry topic is missing or unreadable.
        """
        stopper = Stopper(limits)
        self._stopper = stopper
        config = self.config
        started = time.monotonic()
        self._joined = False
        self._carry = []
        self._paused = []
        static: dict[str, Any] = {}
        if config.instance:  # static membership: a restart takes over without a rebalance
            static["group_instance_id"] = config.transactional_id(self.index)
        consumer = self._consumer = make_consumer(
            self.settings.kafka,
            config.group_id,
            max_poll_interval_ms=config.max_poll_interval_ms,
            isolation_level="read_committed",
            **static,
        )
        producer = self._producer = self._make_producer()
        follower: RegistryFollower | None = None
        try:
            if config.exactly_once:
                self._kafka_call("init_transactions", producer.init_transactions, 30)
            follower = RegistryFollower(
                self.settings, config.model, timeout=config.registry_timeout
            )
            if follower.current is not None:
                self._swap(follower.current)
            if config.metrics_port:
                self.metrics.serve(config.metrics_port + self.index)
            consumer.subscribe(
                [self.settings.topics.clean],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            with stop_on_signals(stopper):
                self._loop(stopper, follower, started)
            self.stats.stopped_by = stopper.reason or "stopped"
            logger.info(
                "score stopping (%s): %s",
                self.stats.stopped_by,
                self.stats.to_json(),
                extra={"data": self.stats.to_dict()},
            )
        finally:
            self.stats.seconds += time.monotonic() - started
            self._stopper = None
            self._abandon()
            if follower is not None:
                follower.close()
            producer.flush(10)
            consumer.close()
            self.metrics.close()
            self._consumer = self._producer = None
        return self.stats

    def _loop(self, stopper: Stopper, follower: RegistryFollower, started: float) -> None:
        config = self.config
        while True:
            if not self._joined and time.monotonic() - started < config.join_timeout:
                stopper.saw_input()
            if stopper.done:
                return
            self._tick()
            record = follower.poll()
            if record is not None:
                self._swap(record)
            if self._live is None:
                self._hold(0.2)  # no model yet: stay in the group, read nothing
                continue
            self._release()
            remaining = stopper.remaining
            wanted = config.batch_size if remaining is None else min(config.batch_size, remaining)
            messages = self._consume(wanted)
            if not messages:
                continue
            batch = self._process(messages, self._live)
            if batch is None or batch.committed:
                stopper.add(len(messages))
            else:
                stopper.saw_input()

    def _make_producer(self) -> Any:
        config = self.config
        overrides: dict[str, Any] = {"linger_ms": config.linger_ms}
        if config.exactly_once:
            overrides["transactional_id"] = config.transactional_id(self.index)
            overrides["transaction_timeout_ms"] = config.transaction_timeout_ms
        return make_producer(self.settings.kafka, **overrides)

    # ---- models -------------------------------------------------------------------------------

    def _swap(self, record: ModelRecord) -> None:
        try:
            scorer = self.factory(record)
        except ModelLoadError as exc:
            keeping = self._live.record.ref if self._live else "no model"
            logger.error("refused model %s: %s (keeping %s)", record.ref, exc, keeping)
            return
        previous = self._live.record.ref if self._live else None
        self._live = _Live(record, scorer)
        self.stats.swaps += 1
        self.metrics.model_version.labels(record.name).set(record.version)
        logger.info(
            "scoring with model %s (threshold %g)%s",
            record.ref,
            record.threshold,
            f", replacing {previous}" if previous else "",
        )

    # ---- one batch ----------------------------------------------------------------------------

    def _consume(self, wanted: int) -> list[Message]:
        out = self._carry[:wanted]
        del self._carry[:wanted]
        if len(out) < wanted:
            timeout = self.config.batch_ms / 1000
            out += self._errors.consume(self._consumer, wanted - len(out), timeout)
            self._joined = self._joined or self._errors.seen  # e.g. a missing topic
        return out

    def _good(self, messages: list[Message]) -> list[Message]:
        good = self._errors.records(messages)
        self._joined = self._joined or self._errors.seen  # e.g. a missing topic
        return good

    def _process(self, messages: list[Message], live: _Live) -> _Batch | None:
        # Per-record work stays in C (list comprehensions over the C methods, dict(zip())):
        # at hundreds of thousands of records a second, every Python bytecode per record counts.
        values = [m.value() for m in messages]
        valid, values = self._valid_fast(messages, values)
        tps = list(
            zip([m.topic() for m in messages], [m.partition() for m in messages], strict=True)
        )
        offsets = [m.offset() for m in messages]
        last: dict[tuple[str, int], int] = dict(zip(tps, offsets, strict=True))
        first: dict[tuple[str, int], int] = dict(zip(reversed(tps), reversed(offsets), strict=True))
        config = self.config
        # The model that scores the batch: the live record, or what a model server reports.
        record: ModelRecord | ScoredBy = live.record
        outputs: list[tuple[bytes, bytes, int, str]] = []  # key, value, timestamp, topic
        anomalies = 0
        if valid:
            if config.all_scores:
                batch = decode_clean_batch(values, strings=True)
                numeric = batch.numeric
                features = batch.features()
            else:  # strings are decoded only for the anomalies, below
                numeric, features = _decode_numeric(values)
            began = time.perf_counter()
            scores, errors = live.scorer.score(features)
            self.metrics.inference.observe(time.perf_counter() - began)
            if isinstance(live.scorer, RemoteScorer) and live.scorer.scored_by is not None:
                record = live.scorer.scored_by
            flags = scores > record.threshold
            hits = np.flatnonzero(flags).tolist()
            anomalies = len(hits)
            if hits or config.all_scores:
                ts = numeric["ts"].tolist()
                seq = numeric["seq"].tolist()
                keys = [m.key() for m in valid] if config.all_scores else []
            if hits:
                raw = np.stack([numeric[name][hits] for name in FEATURES], axis=1)
                tops = top_features(raw, errors[hits], config.top_k)
                topic = self.settings.topics.anomalies
                for i, top in zip(hits, tops, strict=True):
                    message = valid[i]
                    event = decode_clean(values[i])
                    anomaly = Anomaly(
                        car_id=event.car_id,
                        ts=ts[i],
                        seq=seq[i],
                        score=float(scores[i]),
                        threshold=record.threshold,
                        model=record.name,
                        model_version=record.version,
                        top_features=top,
                        failure=event.failure,
                        source=f"{message.topic()}[{message.partition()}]@{message.offset()}",
                    )
                    key = (keys[i] if keys else message.key()) or event.car_id.encode()
                    outputs.append((key, encode_output(anomaly), ts[i], topic))
            if config.all_scores:
                topic = self.settings.topics.scores
                name, version = record.name, record.version
                for car, t, s, value, flag, key in zip(
                    batch.car_id, ts, seq, scores.tolist(), flags.tolist(), keys, strict=True
                ):
                    out = Score(
                        car_id=car,
                        ts=t,
                        seq=s,
                        score=value,
                        model=name,
                        model_version=version,
                        anomaly=flag,
                    )
                    outputs.append((key or car.encode(), encode_output(out), t, topic))
        inflight = _Batch(
            n=len(valid),
            anomalies=anomalies,
            ref=record.ref,
            first=first,
            last=last,
            expected=len(outputs),
        )
        self._inflight = inflight
        try:
            if config.exactly_once:
                self._kafka_call("begin_transaction", self._producer.begin_transaction)
            self._produce(outputs, inflight)
            self._await(inflight)
            self._finish(inflight)
        finally:
            self._inflight = None
        return inflight

    def _valid_fast(
        self, messages: list[Message], values: list[Any]
    ) -> tuple[list[Message], list[bytes]]:
        """``(valid messages, their values)``; checked in C when every record is valid."""
        try:
            shortest = min(map(len, values), default=_MIN_LEN)
            versions = b"".join([value[:1] for value in values])
            if shortest >= _MIN_LEN and not versions.replace(_VERSION_BYTE, b""):
                return messages, values
        except TypeError:  # a value is None (a tombstone)
            pass
        valid = self._valid(messages)
        return valid, [m.value() for m in valid]

    def _valid(self, messages: list[Message]) -> list[Message]:
        valid = []
        for message in messages:
            value = message.value()
            if value is not None and len(value) >= _MIN_LEN and value[0] == CLEAN_VERSION:
                valid.append(message)
                continue
            self.stats.invalid += 1
            now = time.monotonic()
            if now - self._invalid_logged >= _ERROR_LOG_INTERVAL:
                self._invalid_logged = now
                logger.warning(
                    "skipping %s[%d]@%d: not a sensor-clean v%d record (%d invalid so far)",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    CLEAN_VERSION,
                    self.stats.invalid,
                )
        return valid

    def _produce(self, outputs: Sequence[tuple[bytes, bytes, int, str]], batch: _Batch) -> None:
        producer = self._producer
        produce = producer.produce
        callback = batch.on_delivery
        for key, value, timestamp, topic in outputs:
            while True:
                try:
                    produce(topic, value, key, timestamp=timestamp, on_delivery=callback)
                    break
                except BufferError:
                    producer.poll(0.05)  # serves delivery reports, which frees room
                except KafkaException as exc:
                    raise ScoreError(f"cannot produce to {topic}: {exc}") from exc

    def _await(self, batch: _Batch, keepalive: bool = True) -> None:
        """Block until every output of ``batch`` has its delivery report.

        Past ``keepalive_after`` seconds the consumer is polled with its partitions paused, so
        a slow broker does not get this member evicted; a rebalance there finishes ``batch``.
        """
        started = time.monotonic()
        warned = started
        while not batch.reported and not batch.finished:
            try:
                self._producer.flush(0.2)
            except KafkaException as exc:
                raise ScoreError(f"producer failed: {exc}") from exc
            now = time.monotonic()
            if keepalive and now - started >= self.config.keepalive_after:
                self._keep_alive()
            if now - warned >= 30:
                warned = now
                logger.warning(
                    "waited %.0f s for Kafka to acknowledge %d of %d outputs",
                    now - started,
                    batch.expected - batch.acked - batch.failed,
                    batch.expected,
                )

    def _finish(self, batch: _Batch) -> None:
        """Commit ``batch`` (offsets, or the transaction) once; count it when committed."""
        if batch.finished:
            return
        batch.finished = True
        if batch.failed:
            if self.config.exactly_once:
                self._abort(batch)
            error = batch.first_error
            raise ScoreError(
                f"Kafka did not accept {batch.failed} of {batch.expected} outputs "
                f"({error.str() if error is not None else 'unknown error'}); the batch's offsets "
                "are not committed, so it will be scored again"
            )
        if self.config.exactly_once:
            batch.committed = self._commit_transaction(batch)
        else:
            batch.committed = self._commit_offsets(batch)
        if batch.committed:
            stats = self.stats
            stats.events += batch.n
            stats.anomalies += batch.anomalies
            stats.batches += 1
            stats.by_model[batch.ref] += batch.n
            metrics = self.metrics
            metrics.events.inc(batch.n)
            metrics.anomalies.inc(batch.anomalies)
            metrics.batches.inc()
            metrics.batch_size.observe(batch.n)

    def _commit_offsets(self, batch: _Batch) -> bool:
        if commit_sync(self._consumer, batch.offsets(), batch.n, ScoreError):
            return True
        self.stats.commit_failures += 1
        return False

    def _commit_transaction(self, batch: _Batch) -> bool:
        producer = self._producer
        timeout = self.config.transaction_timeout_ms / 1000
        try:
            producer.send_offsets_to_transaction(
                batch.offsets(), self._consumer.consumer_group_metadata(), timeout
            )
            for attempt in range(5):
                try:
                    producer.commit_transaction(timeout)
                    return True
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if (
                        not (isinstance(error, ConfluentError) and error.retriable())
                        or attempt == 4
                    ):
                        raise
                    logger.warning("commit_transaction failed, retrying: %s", error.str())
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, ConfluentError) and error.txn_requires_abort():
                logger.warning(
                    "transaction of %d records aborted (%s); they will be scored again",
                    batch.n,
                    error.str(),
                )
                self._abort(batch)
                return False
            raise self._fatal("committing the transaction", exc) from exc
        return False  # pragma: no cover - the loop returns or raises

    def _abort(self, batch: _Batch) -> None:
        """Abort the open transaction and rewind the batch's partitions still assigned."""
        self.stats.aborted += 1
        self._kafka_call(
            "abort_transaction",
            self._producer.abort_transaction,
            self.config.transaction_timeout_ms / 1000,
        )
        assigned = {(tp.topic, tp.partition) for tp in self._assignment()}
        rewound = set()
        for (topic, partition), offset in batch.first.items():
            if (topic, partition) not in assigned:
                continue
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
                rewound.add((topic, partition))
            except KafkaException as exc:
                logger.warning("cannot rewind %s[%d] to %d: %s", topic, partition, offset, exc)
        if rewound:
            self._carry = [m for m in self._carry if (m.topic(), m.partition()) not in rewound]

    def _abandon(self) -> None:
        """On the way out after an error: abort an open transaction (exactly-once)."""
        batch = self._inflight
        if batch is not None and not batch.finished and self.config.exactly_once:
            batch.finished = True
            try:
                self._producer.abort_transaction(10)
            except KafkaException as exc:
                logger.warning("could not abort the open transaction: %s", exc)

    def _kafka_call(self, what: str, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except KafkaException as exc:
            raise self._fatal(what, exc) from exc

    def _fatal(self, what: str, exc: KafkaException) -> ScoreError:
        error = exc.args[0] if exc.args else None
        if isinstance(error, ConfluentError) and error.code() == ConfluentError._FENCED:
            return ScoreError(
                f"{what}: this scorer was fenced: another one uses transactional.id "
                f"{self.config.transactional_id(self.index)!r} (give each instance its own "
                f"--instance): {error.str()}"
            )
        return ScoreError(f"{what} failed: {exc}")

    # ---- liveness: pause, keep polling, resume ----------------------------------------------

    def _assignment(self) -> list[TopicPartition]:
        try:
            return list(self._consumer.assignment())
        except KafkaException:
            return []

    def _hold(self, timeout: float) -> None:
        """Keep the group membership while not consuming: partitions paused, consumer polled."""
        self._pause()
        self._poll_paused(timeout)

    def _keep_alive(self) -> None:
        self._pause()
        self._poll_paused(0)

    def _pause(self) -> None:
        assignment = self._assignment()
        new = [tp for tp in assignment if tp not in self._paused]
        if new:
            self._consumer.pause(new)
            self._paused += new

    def _poll_paused(self, timeout: float) -> None:
        try:
            messages = self._consumer.consume(num_messages=1000, timeout=timeout)
        except KafkaException as exc:
            raise ScoreError(f"consuming {self.settings.topics.clean} failed: {exc}") from exc
        # Paused partitions return nothing new; anything already buffered is kept, not lost.
        self._carry += self._good(messages)

    def _release(self) -> None:
        if self._paused:
            assigned = set(self._assignment())
            paused = [tp for tp in self._paused if tp in assigned]
            if paused:
                self._consumer.resume(paused)
            self._paused = []

    # ---- rebalance callbacks (called inside consume) -----------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._joined = True
        if self._stopper is not None:
            self._stopper.saw_input()  # the idle clock starts now
        if self._live is None or self._inflight is not None:
            consumer.pause(partitions)
            self._paused += partitions
        logger.info("assigned %s", _describe(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        batch = self._inflight
        if batch is not None and not batch.finished:
            logger.info("partitions revoked mid-batch: finishing the batch first")
            self._await(batch, keepalive=False)
            self._finish(batch)
        self._forget(partitions)
        logger.info("revoked %s", _describe(partitions))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        batch = self._inflight
        if batch is not None and not batch.finished:
            batch.finished = True
            logger.warning("partitions lost mid-batch: %d records will be scored again", batch.n)
            if self.config.exactly_once:
                self.stats.aborted += 1
                self._kafka_call(
                    "abort_transaction",
                    self._producer.abort_transaction,
                    self.config.transaction_timeout_ms / 1000,
                )
        self._forget(partitions)
        logger.warning("lost %s", _describe(partitions))

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._carry = [m for m in self._carry if (m.topic(), m.partition()) not in gone]
        self._paused = [tp for tp in self._paused if (tp.topic, tp.partition) not in gone]
        for topic, partition in gone:
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(topic, str(partition))

    # ---- periodic: lag and progress -----------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        clock = self._clock
        if now - clock.last_lag >= self.config.lag_interval:
            clock.last_lag = now
            self._refresh_lag()
        interval = self.config.log_interval
        if interval and now - clock.last_log >= interval:
            rate = (self.stats.events - clock.events_at_log) / (now - clock.last_log)
            clock.last_log, clock.events_at_log = now, self.stats.events
            self.metrics.rate.set(rate)
            summary = self._summary(rate)
            logger.info(
                "score progress: %s",
                " ".join(f"{k}={v}" for k, v in summary.items()),
                extra={"data": summary},
            )

    def _refresh_lag(self) -> None:
        assignment = self._assignment()
        if not assignment:
            return
        try:
            positions = self._consumer.position(assignment)
        except KafkaException:
            return
        for tp in positions:
            if tp.offset < 0:
                continue
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0:
                lag = max(0, high - tp.offset)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    def _summary(self, rate: float | None = None) -> dict[str, Any]:
        stats = self.stats
        lag = 0.0
        for metric in self.metrics.lag.collect():
            lag = sum(sample.value for sample in metric.samples)
        parts: dict[str, Any] = {
            "events": stats.events,
            "anomalies": stats.anomalies,
            "batches": stats.batches,
            "model": self._live.record.ref if self._live else None,
            "lag": int(lag),
            "invalid": stats.invalid,
            "aborted": stats.aborted,
        }
        if rate is not None:
            parts["rate"] = round(rate, 1)
        return parts


def _describe(partitions: list[TopicPartition]) -> str:
    if not partitions:
        return "no partitions"
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in by_topic.items())


def run_score(
    settings: Settings, score: ScoreSettings | None = None, limits: RunLimits | None = None
) -> ScoreStats:
    """Run the score stage once: ``ScoreStage(settings, score).run(limits)``."""
    return ScoreStage(settings, score).run(limits)
