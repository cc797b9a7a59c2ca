"""`KafkaCollector`: the dashboard's one Kafka-facing thread, for every pipeline it shows.

About once a second (``interval``) it asks the cluster for the end offsets of every partition
of every shown pipeline's topics (one admin request) and for the offsets each pipeline's stage
groups committed on the topics they read (one OffsetFetch per group, through a consumer of that
group that never joins it), and hands the sums to each pipeline's `DashboardState` (which turns
them into events/s and lag).
Between two readings it tails the anomaly topics: a consumer with no group, assigned to every
partition ``backfill`` records before the end (so a page opened late still shows the latest
anomalies), ``read_committed`` so aborted outputs of an exactly-once scorer never show; each
record is decoded with its pipeline's schema. Every ``models_interval`` seconds it folds the
registry log (each pipeline sees its own models), and every ``pipelines_interval`` seconds the
schema registry's, so a pipeline registered later appears in the selector.

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

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from lakeless.config import Settings
from lakeless.dashboard._state import GroupOffsets, Sample
from lakeless.dashboard._views import PipelineView, PipelineViews
from lakeless.errors import LakelessError
from lakeless.kafka import make_admin, make_consumer
from lakeless.pipeline import DEFAULT_PIPELINE, Pipeline
from lakeless.schema.outputs import AnomalyRecord, OutputCodec

__all__ = ["KafkaCollector"]

logger = logging.getLogger(__name__)

#: Seconds between two refreshes of the partition lists (topics created later appear then).
_METADATA_INTERVAL: Final = 15.0


class KafkaCollector:
    """Feeds the `PipelineViews` from Kafka on a daemon thread; `start`, then `stop`.

    Args:
        settings: Kafka connection, topic names, the dashboard's intervals.
        views: the pipelines to feed.
        discover: look for registered pipelines (off: only those in ``views``).
        request_timeout: seconds one admin request may take.
        error_log_interval: seconds between two log lines about failing readings.
    """

    def __init__(
        self,
        settings: Settings,
        views: PipelineViews,
        *,
        discover: bool = True,
        request_timeout: float = 5.0,
        error_log_interval: float = 30.0,
    ) -> None:
        config = settings.dashboard
        self.settings = settings
        self.views = views
        self.interval = config.interval
        self.models_interval = config.models_interval
        self.pipelines_interval = config.pipelines_interval if discover else 0.0
        self.backfill = config.backfill
        self.request_timeout = request_timeout
        self.error_log_interval = error_log_interval
        self._stop = threading.Event()
        self._refresh_models = threading.Event()
        self._thread: threading.Thread | None = None
        self._partitions: dict[str, list[int]] = {}
        self._metadata_at = -_METADATA_INTERVAL
        self._tail: Consumer | None = None
        self._tailed: set[str] = set()
        self._codecs: dict[str, tuple[PipelineView, OutputCodec]] = {}
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
        pipelines_at = time.monotonic()  # the views start with the pipelines known at start
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                if self.pipelines_interval and tick - pipelines_at >= self.pipelines_interval:
                    self._discover()
                    pipelines_at = tick
                self._sample(admin, tick)
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

    def _discover(self) -> None:
        """Add pipelines registered since the last look."""
        from lakeless.pipeline import PipelineError, SchemaRegistry

        try:
            registered = SchemaRegistry(self.settings, timeout=self.request_timeout).pipelines()
        except (PipelineError, KafkaException) as exc:
            logger.debug("dashboard: cannot read the schema registry: %s", exc)
            return
        if not any(p.name == DEFAULT_PIPELINE for p in registered):
            registered.append(Pipeline.builtin(self.settings))
        added = self.views.update(registered)
        if added:
            logger.info("dashboard: new pipelines %s", ", ".join(added))
            self._metadata_at = -_METADATA_INTERVAL  # their topics: list them now

    def _sample(self, admin: AdminClient, at: float) -> None:
        views = self.views.all()
        errors: list[str] = []
        topics = sorted({t for view in views for t in view.state.topics.values()})
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
        for view in views:
            view_errors = list(errors)
            committed: dict[tuple[str, str], GroupOffsets] = {}
            for stage in view.state.stages:
                if stage.group is None:
                    continue
                reads = [view.state.topics[r] for r in stage.reads if r in view.state.topics]
                try:
                    committed.update(self._group_offsets(stage.group, reads, per_partition))
                except KafkaException as exc:
                    view_errors.append(f"group {stage.group}: {exc}")
            error = "; ".join(view_errors) or None
            if error is not None and at - self._last_error_log >= self.error_log_interval:
                logger.warning("dashboard: cannot read Kafka offsets (%s)", error)
                self._last_error_log = at
            view.state.add_sample(Sample(at=at, ends=ends, committed=committed, error=error))

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
        self, group: str, reads: Sequence[str], ends: dict[tuple[str, int], int]
    ) -> dict[tuple[str, str], GroupOffsets]:
        # A consumer in the stage's group that never subscribes, assigns or commits: it only
        # asks the group coordinator for the committed offsets (OffsetFetch), so the group
        # does not notice it. (Not the admin client's list_consumer_group_offsets: librdkafka
        # 2.x crashes the process when the coordinator answers NOT_COORDINATOR there,
        # confluentinc/librdkafka#5040.)
        partitions = [
            TopicPartition(topic, p)
            for topic in sorted(reads)
            for p in self._partitions.get(topic, [])
        ]
        if not partitions:
            return {}
        consumer = self._group_consumers.get(group)
        if consumer is None:
            consumer = make_consumer(self.settings.kafka, group)
            self._group_consumers[group] = consumer
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
        for view in self.views.all():
            topic = view.state.topics.get("anomalies")
            if topic is not None and topic not in self._tailed and topic in self._partitions:
                self._assign_tail(view, topic, self._partitions[topic])
        if self._tail is None:
            self._stop.wait(timeout)
            return
        try:
            messages = self._tail.consume(500, timeout=timeout)
        except KafkaException as exc:
            logger.debug("dashboard: anomaly tail: %s", exc)
            return
        decoded: dict[str, tuple[PipelineView, list[AnomalyRecord]]] = {}
        for view, anomaly in self._decode(messages):
            decoded.setdefault(view.name, (view, []))[1].append(anomaly)
        for view, anomalies in decoded.values():
            # The record order within a poll is per partition; the feed wants event time.
            anomalies.sort(key=lambda a: a.time)
            view.state.add_anomalies(anomalies)

    def _tail_consumer(self) -> Consumer:
        if self._tail is None:
            self._tail = make_consumer(
                self.settings.kafka,
                group_id=f"lakeless-dashboard-{uuid.uuid4().hex[:8]}",  # never joins or commits
                isolation_level="read_committed",
                enable_partition_eof=False,
            )
        return self._tail

    def _assign_tail(self, view: PipelineView, topic: str, parts: Sequence[int]) -> None:
        consumer = self._tail_consumer()
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
        consumer.incremental_assign(assignment)
        self._tailed.add(topic)
        self._codecs[topic] = (view, OutputCodec(view.pipeline.schema))

    def _decode(self, messages: Sequence[Message]) -> Iterator[tuple[PipelineView, AnomalyRecord]]:
        for message in messages:
            if message.error() is not None:
                continue
            view, codec = self._codecs[message.topic() or ""]
            try:
                yield view, codec.decode_anomaly(message.value() or b"")
            except Exception as exc:  # msgspec's decode and validation errors
                logger.warning(
                    "dashboard: skipping %s[%d]@%d: not an anomaly record of %s (%s)",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    view.name,
                    exc,
                )

    # ---- the registry --------------------------------------------------------------------------

    def _read_models(self) -> None:
        from lakeless.registry import Registry, RegistrySettings

        views = self.views.all()
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
        except (LakelessError, KafkaException) as exc:
            for view in views:
                view.state.set_models([], {}, error=str(exc))
            return
        for view in views:
            # A pipeline's models: trained on its data, or registered under its model's name.
            mine = [s for s in summaries if s.pipeline == view.name or s.name == view.model]
            names = {s.name for s in mine}
            view.state.set_models(mine, {n: v for n, v in live.items() if n in names})
