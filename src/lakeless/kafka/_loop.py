"""The one batch loop every consuming stage runs: consume -> process -> produce -> acks -> commit.

A stage is a `BaseStep`: a pure ``process(messages) -> BatchResult`` plus a few hooks. The
`BatchLoop` owns everything Kafka: the consumer group, the producer, pausing and keep-alive,
rebalances, the delivery guarantee, errors, limits, stats and metrics (Quix Streams'
checkpoint design: outputs are acknowledged, or the transaction is committed, before the
offsets move).

One cycle per batch:

1. ``step.before_batch()`` (e.g. a hot swap of the model); while ``step.ready()`` is false
   (e.g. no live model yet) the assigned partitions are paused and the consumer keeps polling,
   so the member stays in its group;
2. consume: wait up to ``poll_timeout`` for a first record, then take whatever librdkafka has
   buffered, up to ``batch_size`` (and, with ``batch_ms``, wait that long for more): at low
   rates a batch closes as soon as its records are read, at high rates batches grow;
3. ``step.process(messages)``: the outputs (topic, value, key, timestamp, headers);
4. produce them and wait for every delivery report;
5. commit: at-least-once, ``last offset + 1`` of every partition of the batch, synchronously;
   exactly-once, the outputs and the offsets are one Kafka transaction
   (``send_offsets_to_transaction`` + ``commit_transaction``, retried when retriable);
6. ``step.committed(result)``: the step counts what is now durable.

Pipelined (at-least-once with ``pipeline_depth`` > 1): steps 4-6 of a batch overlap the next
batches' 2-3. Up to ``pipeline_depth`` batches wait for their delivery reports; each is
committed (asynchronously, oldest first, never before its own outputs are acknowledged) as
soon as its reports are in, so an event does not wait for the previous batch's round trips.
A revoke, the end of a run or no new input commits every waiting batch; the last commit of a
run is synchronous. A crash costs at most the waiting batches, processed again.

Liveness: nothing in a cycle may keep the consumer from polling for ``max.poll.interval.ms``.
While it waits longer than ``keepalive_after`` seconds for acknowledgements, the loop pauses
its partitions and polls; records returned meanwhile are kept for the next batch. A rebalance
can therefore happen mid-batch (inside that poll): the revoke callback finishes the in-flight
batch (acks and commit, or the transaction) before the partitions go; when partitions are
*lost* instead, the batch is not committed (its transaction aborted), and their new owner
processes it again. A commit refused because the group moved on is logged and costs only
duplicates (at-least-once).

Exactly-once: the producer's ``transactional.id`` is given by the stage (stable across
restarts, distinct per member): a restarted member fences its predecessor and aborts its open
transaction; two members sharing an id fence each other, which is fatal with a message that
says so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, Message, TopicPartition

from lakeless.config import Settings
from lakeless.errors import KafkaError, LakelessError
from lakeless.kafka._check import check_fresh_group, check_topics
from lakeless.kafka._clients import make_consumer, make_producer
from lakeless.kafka._commit import commit_sync, commit_transaction
from lakeless.kafka._consume import ConsumeErrors
from lakeless.kafka._liveness import Liveness
from lakeless.kafka._stats import ProgressLog, StageMetrics, StageStats
from lakeless.kafka._step import BaseStep, Inflight, LoopConfig
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals

__all__ = ["BatchLoop", "describe"]

logger = logging.getLogger(__name__)


class BatchLoop(Liveness):
    """Runs a `BaseStep` in a consumer group until a limit; see the module docstring.

    Args:
        settings: connections (``settings.kafka``).
        config: the loop's configuration.
        step: the stage's pure part.
        error_type: what fatal errors are raised as.
        stats: where committed counts go (a `StageStats` or a subclass).
        metrics: the stage's Prometheus metrics.
    """

    def __init__(
        self,
        settings: Settings,
        config: LoopConfig,
        step: BaseStep,
        *,
        error_type: type[KafkaError] = KafkaError,
        stats: StageStats | None = None,
        metrics: StageMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.step = step
        self.error_type = error_type
        self.stats = stats if stats is not None else StageStats()
        self.metrics = metrics if metrics is not None else StageMetrics(step.name)
        self._stopper: Stopper | None = None
        self._consumer: Any = None
        self._producer: Any = None
        # Batches produced and not yet committed, oldest first (more than one only with
        # ``pipeline_depth`` > 1, at-least-once).
        self._pending: deque[Inflight] = deque()
        self._carry: list[Message] = []
        self._paused: list[TopicPartition] = []
        self._joined = False
        self._errors = ConsumeErrors(error_type)
        self._last_lag = 0.0
        self._progress = ProgressLog(step.name, config.log_interval, self.metrics)
        self._waiting_logged = 0.0
        self._first_record_at: float | None = None
        self._active = 0.0

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        if self._stopper is not None:
            self._stopper.request_stop(reason)

    # ---- the loop ---------------------------------------------------------------------------

    def run(
        self, limits: RunLimits | None = None, *, on_start: Callable[[], None] | None = None
    ) -> StageStats:
        """Process batches until a limit is reached or SIGTERM/SIGINT arrives.

        The current batch is finished and committed before it returns. ``limits.count`` counts
        records read (a run never reads past it, so the next run of the group starts right
        after); ``until_idle`` counts from the last record read or the last assignment (before
        the first one, up to ``join_timeout``; waiting while the step is not ready is idle
        too).

        Args:
            limits: when to stop.
            on_start: called once subscribed (e.g. to report readiness).

        Returns:
            `stats`, the committed counts over every run of this loop.

        Raises:
            KafkaError: (``error_type``) a fatal Kafka error, or outputs Kafka did not accept
                (their offsets are then not committed).
        """
        config = self.config
        try:
            # librdkafka waits for a missing topic forever: a stage would end "idle", done nothing.
            check_topics(self.settings.kafka, config.topics, hint=config.create_hint)
            if config.guard_outputs and not config.reprocess:
                check_fresh_group(
                    self.settings.kafka, config.group_id, config.topics, config.guard_outputs
                )
        except KafkaError as exc:
            if isinstance(exc, self.error_type):
                raise
            raise self.error_type(str(exc)) from exc
        stopper = self._stopper = Stopper(limits)
        started = time.monotonic()
        self._joined = False
        self._carry = []
        self._paused = []
        self._first_record_at = None
        self._active = 0.0
        active_before = self.stats.active_seconds
        overrides: dict[str, Any] = {
            "max_poll_interval_ms": config.max_poll_interval_ms,
            "isolation_level": config.isolation_level,
            **config.consumer,
        }
        if config.instance_id:
            overrides["group_instance_id"] = config.instance_id
        try:
            consumer = self._consumer = make_consumer(
                self.settings.kafka,
                config.group_id,
                on_commit=self._on_commit if self._pipelined else None,
                **overrides,
            )
            producer = self._producer = self._make_producer() if config.produces else None
        except KafkaException as exc:
            raise self.error_type(
                f"{self.step.name}: cannot create the Kafka clients: {exc}"
            ) from exc
        try:
            if config.exactly_once and producer is not None:
                self._kafka_call("init_transactions", producer.init_transactions, 30)
            consumer.subscribe(
                list(config.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            if on_start is not None:
                on_start()
            with stop_on_signals(stopper):
                self._loop(stopper, started)
                self._settle(keep=0, final=True)  # every pending batch, the last commit in sync
            self.stats.stopped_by = stopper.reason or "stopped"
        finally:
            self.stats.seconds += time.monotonic() - started
            self.stats.active_seconds = active_before + self._active
            self._stopper = None
            self._abandon()
            if producer is not None:
                producer.flush(10)
            consumer.close()
            self._consumer = self._producer = None
        return self.stats

    def _loop(self, stopper: Stopper, started: float) -> None:
        config = self.config
        step = self.step
        while True:
            if not self._joined and time.monotonic() - started < config.join_timeout:
                stopper.saw_input()
            if stopper.done:
                return
            self._tick()
            step.before_batch()
            if not step.ready():
                self._log_waiting()
                self._hold(0.2)  # stay in the group, read nothing
                continue
            self._release()
            remaining = stopper.remaining
            if remaining is not None:
                remaining -= sum(len(b.messages) for b in self._pending)  # read, not committed
            wanted = config.batch_size if remaining is None else min(config.batch_size, remaining)
            messages = self._consume(wanted) if wanted > 0 else []
            if not messages:
                self._settle(keep=0)  # nothing new: commit what waits for its acks
                continue
            stopper.saw_input()
            self._process(messages)

    def _make_producer(self) -> Any:
        config = self.config
        overrides: dict[str, Any] = {"linger_ms": config.linger_ms, **config.producer}
        if config.exactly_once:
            if not config.transactional_id:
                raise LakelessError("exactly-once needs a transactional id")
            overrides["transactional_id"] = config.transactional_id
            overrides["transaction_timeout_ms"] = config.transaction_timeout_ms
        return make_producer(self.settings.kafka, **overrides)

    def _log_waiting(self) -> None:
        now = time.monotonic()
        if now - self._waiting_logged >= 30:
            self._waiting_logged = now
            logger.info("%s: waiting for %s", self.step.name, self.step.waiting_for())

    # ---- one batch --------------------------------------------------------------------------

    def _consume(self, wanted: int) -> list[Message]:
        out = self._carry[:wanted]
        del self._carry[:wanted]
        consumer = self._consumer
        config = self.config
        if not out:
            out = self._good(self._poll(consumer, config.poll_timeout))
            if not out:
                return out
        if len(out) < wanted:  # whatever is buffered already
            out += self._errors.consume(consumer, wanted - len(out), 0)
        if config.batch_ms and len(out) < wanted:
            out += self._errors.consume(consumer, wanted - len(out), config.batch_ms / 1000)
        self._joined = self._joined or self._errors.seen  # e.g. a missing topic
        return out

    def _poll(self, consumer: Any, timeout: float) -> list[Message]:
        try:
            message = consumer.poll(timeout)
        except KafkaException as exc:
            raise self.error_type(f"consuming failed: {exc}") from exc
        return [] if message is None else [message]

    def _good(self, messages: list[Message]) -> list[Message]:
        good = self._errors.records(messages)
        self._joined = self._joined or self._errors.seen
        return good

    def _process(self, messages: list[Message]) -> Inflight:
        began = time.perf_counter()
        tps = list(
            zip([m.topic() for m in messages], [m.partition() for m in messages], strict=True)
        )
        offsets = [m.offset() for m in messages]
        last: dict[tuple[str, int], int] = dict(zip(tps, offsets, strict=True))
        first: dict[tuple[str, int], int] = dict(zip(reversed(tps), reversed(offsets), strict=True))
        exactly_once = self.config.exactly_once
        if exactly_once:
            self._kafka_call("begin_transaction", self._producer.begin_transaction)
        try:
            result = self.step.process(messages)
        except BaseException:
            if exactly_once:
                with contextlib.suppress(KafkaException):
                    self._producer.abort_transaction(10)
            raise
        batch = Inflight(messages, result, first, last, len(result.outputs), began)
        self._pending.append(batch)
        self._produce(batch)
        self._settle(keep=self.config.pipeline_depth - 1 if self._pipelined else 0)
        return batch

    @property
    def _pipelined(self) -> bool:
        return self.config.pipeline_depth > 1 and not self.config.exactly_once

    def _settle(self, keep: int, final: bool = False) -> None:
        """Commit pending batches, oldest first, until at most ``keep`` wait for their acks.

        Batches whose acknowledgements are all in are committed whatever ``keep`` says; a
        pipelined commit is asynchronous, except with ``final`` (the last one of a run).
        """
        pending = self._pending
        if pending and self._producer is not None:
            try:
                self._producer.poll(0)  # delivery reports
            except KafkaException as exc:
                raise self._fatal("producing", exc) from exc
        while pending:
            batch = pending[0]
            if batch.finished:
                pending.popleft()
                continue
            if len(pending) <= keep and not batch.reported:
                return
            self._await(batch)
            self._finish(batch, sync=not self._pipelined or (final and len(pending) == 1))
            if pending and pending[0] is batch:
                pending.popleft()

    def _produce(self, batch: Inflight) -> None:
        producer = self._producer
        if producer is None:
            if batch.result.outputs:
                raise LakelessError(f"{self.step.name} produced outputs but has no producer")
            return
        produce = producer.produce
        cb = batch.on_delivery
        for topic, value, key, timestamp, headers in batch.result.outputs:
            while True:
                try:
                    produce(topic, value, key, timestamp=timestamp, headers=headers, on_delivery=cb)
                    break
                except BufferError:
                    producer.poll(0.05)  # serves delivery reports, which frees room
                except KafkaException as exc:
                    raise self._fatal(f"producing to {topic}", exc) from exc

    def _await(self, batch: Inflight, keepalive: bool = True) -> None:
        """Block until every output of ``batch`` has its delivery report.

        Past ``keepalive_after`` seconds the consumer is polled with its partitions paused, so
        a slow broker does not get this member evicted; a rebalance there finishes ``batch``.
        """
        if self._producer is None:
            return
        started = time.monotonic()
        warned = started
        while not batch.reported and not batch.finished:
            try:
                self._producer.flush(0.2)
            except KafkaException as exc:
                raise self._fatal("producing", exc) from exc
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

    def _finish(self, batch: Inflight, sync: bool = True) -> None:
        """Commit ``batch`` (offsets, or the transaction) once; count it when committed.

        ``sync=False`` (pipelined, at-least-once): the offsets are committed asynchronously;
        a failure is logged by `_on_commit` and costs duplicates only, as a refused commit.
        """
        if batch.finished:
            return
        batch.finished = True
        if batch.failed:
            error = batch.first_error
            if error is not None and error.code() == ConfluentError._FENCED:
                raise self._fatal("producing", KafkaException(error))
            if self.config.exactly_once:
                self._abort(batch)
            raise self.error_type(
                f"Kafka did not accept {batch.failed} of {batch.expected} outputs to "
                f"{', '.join(sorted(batch.failed_topics))} "
                f"({error.str() if error is not None else 'unknown error'}); the batch's offsets "
                "are not committed, so it will be processed again"
            )
        if self.config.exactly_once:
            batch.committed = self._commit_transaction(batch)
        elif sync:
            batch.committed = self._commit_offsets(batch)
        else:
            self._commit_async(batch)
            batch.committed = True
        if batch.committed:
            n = len(batch.messages)
            result = batch.result
            stats = self.stats
            stats.received += n
            stats.produced += batch.expected
            stats.dead_lettered += result.dead_lettered
            stats.filtered += result.filtered
            stats.invalid += result.invalid
            stats.batches += 1
            metrics = self.metrics
            metrics.events.inc(n)
            metrics.outputs.inc(batch.expected)
            metrics.batches.inc()
            metrics.batch_size.observe(n)
            metrics.batch_seconds.observe(time.perf_counter() - batch.started)
            if self._first_record_at is None:
                self._first_record_at = batch.started
            self._active = time.perf_counter() - self._first_record_at
            if self._stopper is not None:
                self._stopper.add(n)
            self.step.committed(result, n)

    def _commit_offsets(self, batch: Inflight) -> bool:
        if commit_sync(self._consumer, batch.offsets(), len(batch.messages), self.error_type):
            return True
        self.stats.commit_failures += 1
        return False

    def _commit_async(self, batch: Inflight) -> None:
        try:
            self._consumer.commit(offsets=batch.offsets(), asynchronous=True)
        except KafkaException as exc:  # e.g. no longer assigned: as a refused commit
            self._on_commit(exc.args[0] if exc.args else exc, batch.offsets())

    def _on_commit(self, error: Any, partitions: list[TopicPartition]) -> None:
        """Librdkafka's ``on_commit``: an asynchronous commit that failed costs duplicates."""
        if error is None:
            return
        self.stats.commit_failures += 1
        logger.warning(
            "commit of %s failed (%s); those records may be processed again",
            describe(partitions),
            error.str() if isinstance(error, ConfluentError) else error,
        )

    def _commit_transaction(self, batch: Inflight) -> bool:
        timeout = self.config.transaction_timeout_ms / 1000
        try:
            commit_transaction(self._producer, self._consumer, batch.offsets(), timeout)
            return True
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, ConfluentError) and error.txn_requires_abort():
                logger.warning(
                    "transaction of %d records aborted (%s); they will be processed again",
                    len(batch.messages),
                    error.str(),
                )
                self._abort(batch)
                return False
            raise self._fatal("committing the transaction", exc) from exc

    def _abort(self, batch: Inflight) -> None:
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
        """On the way out after an error: abort an open transaction (exactly-once).

        Batches not committed are forgotten: their records are read again by the next run.
        """
        open_batches = [b for b in self._pending if not b.finished]
        self._pending.clear()
        if open_batches and self.config.exactly_once:
            for batch in open_batches:
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

    def _fatal(self, what: str, exc: KafkaException) -> KafkaError:
        error = exc.args[0] if exc.args else None
        if isinstance(error, ConfluentError) and error.code() == ConfluentError._FENCED:
            return self.error_type(
                f"{what}: this {self.step.name} was fenced: another one uses transactional.id "
                f"{self.config.transactional_id!r} (give each instance its own --instance): "
                f"{error.str()}"
            )
        return self.error_type(f"{what} failed: {exc}")

    # ---- rebalance callbacks (called inside poll / consume) ---------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._joined = True
        if self._stopper is not None:
            self._stopper.saw_input()  # the idle clock starts now
        if self._pending or not self.step.ready():
            consumer.pause(partitions)
            self._paused += partitions
        logger.info("assigned %s", describe(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        waiting = [b for b in self._pending if not b.finished]
        if waiting:
            logger.info("partitions revoked mid-batch: finishing %d batch(es) first", len(waiting))
            for batch in waiting:  # oldest first; each commit synchronous, before they go
                self._await(batch, keepalive=False)
                self._finish(batch)
        self._forget(partitions)
        logger.info("revoked %s", describe(partitions))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        waiting = [b for b in self._pending if not b.finished]
        if waiting:
            for batch in waiting:
                batch.finished = True
            logger.warning(
                "partitions lost mid-batch: %d records will be processed again",
                sum(len(b.messages) for b in waiting),
            )
            if self.config.exactly_once:
                self.stats.aborted += 1
                self._kafka_call(
                    "abort_transaction",
                    self._producer.abort_transaction,
                    self.config.transaction_timeout_ms / 1000,
                )
        self._forget(partitions)
        logger.warning("lost %s", describe(partitions))

    # ---- periodic: lag and progress ---------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        config = self.config
        if now - self._last_lag >= config.lag_interval:
            self._last_lag = now
            self.metrics.refresh_lag(self._consumer, self._assignment())
        if self._progress.due():
            fields = {**self.stats.progress(), **self.step.progress(), "lag": self.lag()}
            self._progress.log(self.stats.received, fields)

    def lag(self) -> int:
        """Records behind the end of every assigned partition (as last refreshed)."""
        return self.metrics.total_lag()


def describe(partitions: Sequence[TopicPartition]) -> str:
    """``topic[0, 1, 2], other[3]``, how log lines name partitions."""
    if not partitions:
        return "no partitions"
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in by_topic.items())
