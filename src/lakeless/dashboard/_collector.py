"""`KafkaCollector`: the dashboard's one Kafka-facing thread.

About once a second (``interval``) it asks the cluster for the end offsets of every partition
of the pipeline topics (one admin request) and for the offsets every stage's consumer group
committed on the topics it reads (one OffsetFetch per group, through a consumer of that group
that never joins it), and hands the sums to `DashboardState` (which turns them into events/s
and lag).
Between two readings it tails ``anomalies``: a consumer with no group, assigned to every
partition ``backfill`` records before the end (so a page opened late still shows the latest
anomalies), ``read_committed`` so aborted outputs of an exactly-once scorer never show. Every
``models_interval`` seconds it folds the registry log into the registry view.

Nothing the collector does can stop the page: a failed reading is logged once per
``error_log_interval`` and shown on the page, and the next tick tries again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Final

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from lakeless.config import Settings
from lakeless.dashboard._state import DashboardState, GroupOffsets, Sample
from lakeless.kafka import make_admin, make_consumer
from lakeless.score._output import Anomaly, decode_anomaly

__all__ = ["KafkaCollector"]

logger = logging.getLogger(__name__)

#: Seconds between two refreshes of the partition lists (topics created later appear then).
_METADATA_INTERVAL: Final = 15.0


class KafkaCollector:
    """Feeds a `DashboardState` from Kafka on a daemon thread; `start`, then `stop`.

    Args:
        settings: Kafka connection and topic names.
        state: where the readings go.
        interval: seconds between two offset readings.
        models_interval: seconds between two registry refreshes (0: never).
        backfill: anomalies per partition read from before the end at start.
        request_timeout: seconds one admin request may take.
        error_log_interval: seconds between two log lines about failing readings.
    """

    def __init__(
        self,
        settings: Settings,
        state: DashboardState,
        *,
        interval: float = 1.0,
        models_interval: float = 5.0,
        backfill: int = 20,
        request_timeout: float = 5.0,
        error_log_interval: float = 30.0,
    ) -> None:
        self.settings = settings
        self.state = state
        self.interval = interval
        self.models_interval = models_interval
        self.backfill = backfill
        self.request_timeout = request_timeout
        self.error_log_interval = error_log_interval
        self._stop = threading.Event()
        self._refresh_models = threading.Event()
        self._thread: threading.Thread | None = None
        self._partitions: dict[str, list[int]] = {}
        self._metadata_at = -_METADATA_INTERVAL
        self._tail: Consumer | None = None
        self._tail_assigned = False
        self._group_consumers: dict[str, Consumer] = {}
        self._last_error_log = -error_log_interval

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KafkaCollector:
        """Start the thread (returns at once)."""
        self._thread = threading.Thread(target=self._run, name="dashboard-collector", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close its clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def refresh_models(self) -> None:
        """Refresh the registry view at the next chance (after a training run, say)."""
        self._refresh_models.set()

    # ---- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        admin = make_admin(self.settings.kafka)
        models_at = -self.models_interval
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                self.state.add_sample(self._sample(admin, tick))
                if self.models_interval > 0 and (
                    self._refresh_models.is_set() or tick - models_at >= self.models_interval
                ):
                    self._refresh_models.clear()
                    self._read_models()
                    models_at = time.monotonic()
                # Tail anomalies until the next tick is due.
                while not self._stop.is_set():
                    left = tick + self.interval - time.monotonic()
                    if left <= 0 or self._refresh_models.is_set():
                        break
                    self._poll_anomalies(min(left, 0.25))
        except Exception:  # a bug here must not go unnoticed: the page would freeze silently
            logger.exception("dashboard collector stopped")
            raise
        finally:
            for consumer in [self._tail, *self._group_consumers.values()]:
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.close()
            self._tail = None
            self._group_consumers.clear()

    def _sample(self, admin: AdminClient, at: float) -> Sample:
        errors: list[str] = []
        topics = [t for t in self.state.topics.values()]
        if at - self._metadata_at >= _METADATA_INTERVAL or not self._partitions:
            try:
                self._partitions = self._list_partitions(admin, topics)
                self._metadata_at = at
            except KafkaException as exc:
                errors.append(f"metadata: {exc}")
        per_partition: dict[tuple[str, int], int] = {}
        ends: dict[str, int] = {}
        if self._partitions:
            try:
                per_partition = self._end_offsets(admin)
                for (topic, _p), end in per_partition.items():
                    ends[topic] = ends.get(topic, 0) + end
            except KafkaException as exc:
                errors.append(f"end offsets: {exc}")
        committed: dict[tuple[str, str], GroupOffsets] = {}
        for stage in self.state.stages:
            if stage.group is None:
                continue
            try:
                committed.update(self._group_offsets(stage.group, per_partition))
            except KafkaException as exc:
                errors.append(f"group {stage.group}: {exc}")
        error = "; ".join(errors) or None
        if error is not None and at - self._last_error_log >= self.error_log_interval:
            logger.warning("dashboard: cannot read Kafka offsets (%s)", error)
            self._last_error_log = at
        return Sample(at=at, ends=ends, committed=committed, error=error)

    def _list_partitions(self, admin: AdminClient, topics: Sequence[str]) -> dict[str, list[int]]:
        metadata = admin.list_topics(timeout=self.request_timeout)
        return {
            name: sorted(metadata.topics[name].partitions)
            for name in topics
            if name in metadata.topics and metadata.topics[name].error is None
        }

    def _end_offsets(self, admin: AdminClient) -> dict[tuple[str, int], int]:
        request = {
            TopicPartition(topic, p): OffsetSpec.latest()
            for topic, parts in self._partitions.items()
            for p in parts
        }
        futures = admin.list_offsets(request, request_timeout=self.request_timeout)
        return {
            (tp.topic, tp.partition): int(future.result().offset) for tp, future in futures.items()
        }

    def _group_offsets(
        self, group: str, ends: dict[tuple[str, int], int]
    ) -> dict[tuple[str, str], GroupOffsets]:
        # A consumer in the stage's group that never subscribes, assigns or commits: it only
        # asks the group coordinator for the committed offsets (OffsetFetch), so the group
        # does not notice it. (Not the admin client's list_consumer_group_offsets: librdkafka
        # 2.x crashes the process when the coordinator answers NOT_COORDINATOR there,
        # confluentinc/librdkafka#5040.)
        consumer = self._group_consumers.get(group)
        if consumer is None:
            consumer = make_consumer(self.settings.kafka, group)
            self._group_consumers[group] = consumer
        reads = {
            self.state.topics[role]
            for stage in self.state.stages
            if stage.group == group
            for role in stage.reads
            if role in self.state.topics
        }
        partitions = [
            TopicPartition(topic, p)
            for topic in sorted(reads)
            for p in self._partitions.get(topic, [])
        ]
        if not partitions:
            return {}
        sums: dict[str, list[int]] = {}
        for tp in consumer.committed(partitions, timeout=self.request_timeout):
            if tp.error is not None or tp.offset < 0:
                continue
            entry = sums.setdefault(tp.topic, [0, 0, 0])
            entry[0] += tp.offset
            end = ends.get((tp.topic, tp.partition))
            if end is not None:
                entry[1] += max(0, end - tp.offset)
                entry[2] += 1
        return {
            (group, topic): GroupOffsets(committed=c, lag=lag if n else None)
            for topic, (c, lag, n) in sums.items()
        }

    # ---- the anomaly tail ----------------------------------------------------------------------

    def _poll_anomalies(self, timeout: float) -> None:
        topic = self.state.topics.get("anomalies")
        parts = self._partitions.get(topic or "")
        if topic is None or not parts:
            self._stop.wait(timeout)
            return
        consumer = self._tail_consumer()
        if not self._tail_assigned:
            self._assign_tail(consumer, topic, parts)
        try:
            messages = consumer.consume(500, timeout=timeout)
        except KafkaException as exc:
            logger.debug("dashboard: anomaly tail: %s", exc)
            return
        anomalies = list(self._decode(messages))
        if anomalies:
            # The record order within a poll is per partition; the feed wants event time.
            anomalies.sort(key=lambda a: a.ts)
            self.state.add_anomalies(anomalies)

    def _tail_consumer(self) -> Consumer:
        if self._tail is None:
            self._tail = make_consumer(
                self.settings.kafka,
                group_id=f"lakeless-dashboard-{uuid.uuid4().hex[:8]}",  # never joins or commits
                isolation_level="read_committed",
                enable_partition_eof=False,
            )
        return self._tail

    def _assign_tail(self, consumer: Consumer, topic: str, parts: Sequence[int]) -> None:
        assignment = []
        for p in parts:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=self.request_timeout
                )
                start = max(low, high - self.backfill)
            except KafkaException:
                start = OFFSET_END
            assignment.append(TopicPartition(topic, p, start))
        consumer.assign(assignment)
        self._tail_assigned = True

    def _decode(self, messages: Sequence[Message]) -> Iterator[Anomaly]:
        for message in messages:
            if message.error() is not None:
                continue
            try:
                yield decode_anomaly(message.value() or b"")
            except Exception as exc:  # msgspec's decode and validation errors
                logger.warning(
                    "dashboard: skipping %s[%d]@%d: not an anomaly record (%s)",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                )

    # ---- the registry --------------------------------------------------------------------------

    def _read_models(self) -> None:
        from lakeless.registry import Registry, RegistryError, RegistrySettings

        try:
            with Registry(
                self.settings, RegistrySettings(timeout=max(self.request_timeout, 5.0))
            ) as registry:
                state = registry.state()
            summaries = sorted(
                state.summaries(), key=lambda s: (s.created_at, s.version), reverse=True
            )
            live: dict[str, int] = {}
            for summary in summaries:
                version = state.live_version(summary.name)
                if version is not None:
                    live[summary.name] = version
            self.state.set_models(summaries, live)
        except (RegistryError, KafkaException) as exc:
            self.state.set_models([], {}, error=str(exc))
