"""The twin stage: ``NAME.clean`` + ``NAME.anomalies`` -> `TwinStore`, in the one batch loop.

`TwinStage` plugs `TwinStep` into `lakeless.kafka.BatchLoop` (one consumer group, ``lakeless-twin``
for the default pipeline, subscribed to both topics, ``read_committed`` so aborted outputs of an
exactly-once scorer are never applied). Each batch: readings decode with the pipeline's clean
decoder, anomalies as JSON; a record that does not decode is logged as
``topic[partition]@offset`` and skipped; `TwinStore.apply` writes the whole batch in one
database transaction; then the loop commits the offsets.

Delivery: at-least-once, and a batch applied twice (a crash between the database commit and the
Kafka commit, a rebalance, a replay by a new group) changes nothing, because every write is keyed
by ``(entity, position)`` and only moves an entity's state forward; so the twin holds what
exactly-once processing would give.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec
from confluent_kafka import Message

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import BaseStep, BatchLoop, BatchResult, LoopConfig, StageMetrics, StageStats
from lakeless.lifecycle import RunLimits
from lakeless.pipeline import Pipeline
from lakeless.schema.outputs import AnomalyRecord, OutputCodec
from lakeless.twin._open import open_store
from lakeless.twin._records import ApplyResult
from lakeless.twin._settings import TwinSettings
from lakeless.twin._store import TwinStore

__all__ = ["TwinStage", "TwinStats", "TwinStep", "open_twin", "run_twin"]

logger = logging.getLogger(__name__)


class TwinKafkaError(KafkaError):
    """The twin cannot go on: a fatal Kafka error."""


@dataclass
class TwinStats(StageStats):
    """Counts of applied and committed work over every run of one `TwinStage`.

    Attributes:
        readings: readings applied.
        anomalies: anomaly records applied.
        new_readings: of those, stored for the first time (the rest were replays or older
            than the retained window).
        new_anomalies: likewise for anomalies.
    """

    readings: int = 0
    anomalies: int = 0
    new_readings: int = 0
    new_anomalies: int = 0


def open_twin(settings: Settings, pipeline: Pipeline, *, read_only: bool = False) -> TwinStore:
    """The pipeline's twin store as ``settings.twin`` configures it."""
    config: TwinSettings = settings.twin
    return open_store(
        config.database_url(settings.data_dir, pipeline.name),
        pipeline.schema,
        pipeline.name,
        read_only=read_only,
        keep_readings=config.keep_readings,
        keep_anomalies=config.keep_anomalies,
        episode_gap_ms=config.episode_gap_ms,
    )


class TwinStep(BaseStep):
    """Applies a batch of readings and anomalies to the store (the store is the sink)."""

    name = "twin"

    def __init__(self, pipeline: Pipeline, store: TwinStore, stats: TwinStats) -> None:
        self.pipeline = pipeline
        self.store = store
        self.stats = stats
        self.decoder = pipeline.decoder()
        self.outputs = OutputCodec(pipeline.schema)

    def process(self, messages: list[Message]) -> BatchResult:
        """Decode and apply one batch in one database transaction."""
        clean = self.pipeline.topics.clean
        readings: list[Message] = []
        anomalies: list[AnomalyRecord] = []
        invalid = 0
        decode = self.outputs.decode_anomaly
        for message in messages:
            if message.topic() == clean:
                readings.append(message)
                continue
            try:
                anomalies.append(decode(message.value()))
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                invalid += 1
                _log_invalid(message, str(exc))
        batch, _kept, problems = self.decoder.decode_valid([m.value() for m in readings])
        for problem in problems:
            _log_invalid(readings[problem.index], problem.reason)
        result = self.store.apply(batch, anomalies)
        return BatchResult(
            invalid=invalid + len(problems), payload=(len(batch), len(anomalies), result)
        )

    def committed(self, result: BatchResult, n: int) -> None:
        """Count a committed batch."""
        readings, anomalies, applied = result.payload
        assert isinstance(applied, ApplyResult)
        stats = self.stats
        stats.readings += readings
        stats.anomalies += anomalies
        stats.new_readings += applied.new_readings
        stats.new_anomalies += applied.new_anomalies

    def progress(self) -> dict[str, Any]:
        """Readings and anomalies so far."""
        return {"readings": self.stats.readings, "anomalies": self.stats.anomalies}


class TwinStage:
    """Keeps a pipeline's twin from its clean and anomaly topics; `run` until a limit.

    Args:
        settings: connections and the stage's settings (``settings.twin``).
        pipeline: the pipeline (default: the built-in car fleet with ``settings.topics``).
        store: write to this open store instead of opening ``settings.twin.url`` (not closed
            by `run`).

    Attributes:
        stats: counts over every run of this object.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline | None = None,
        *,
        store: TwinStore | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline or Pipeline.builtin(settings)
        self.config: TwinSettings = settings.twin
        self.group_id = self.config.group_id or self.pipeline.group("twin")
        self.stats = TwinStats()
        self.metrics = StageMetrics("twin")
        self._store = store
        self._loop: BatchLoop | None = None

    def request_stop(self) -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        if self._loop is not None:
            self._loop.request_stop()

    def run(self, limits: RunLimits | None = None) -> TwinStats:
        """Apply batches until a limit (default: the settings') or SIGTERM/SIGINT arrives.

        Returns:
            `stats`.

        Raises:
            TwinError: the database cannot be opened or refused a batch (whose offsets are
                then not committed).
            lakeless.errors.KafkaError: a fatal Kafka error.
        """
        config = self.config
        store = self._store or open_twin(self.settings, self.pipeline)
        topics = (self.pipeline.topics.clean, self.pipeline.topics.anomalies)
        try:
            logger.info("twin: %s -> %r (group %s)", " + ".join(topics), store, self.group_id)
            self._loop = BatchLoop(
                self.settings,
                LoopConfig.from_options(
                    config,
                    group_id=self.group_id,
                    topics=topics,
                    produces=False,
                    create_hint=self.pipeline.create_hint,
                ),
                TwinStep(self.pipeline, store, self.stats),
                error_type=TwinKafkaError,
                stats=self.stats,
                metrics=self.metrics,
            )
            if config.metrics_port:
                self.metrics.serve(config.metrics_port, config.metrics_host, self.settings.http)
            self._loop.run(limits or config.limits())
            logger.info("twin stopping (%s): %s", self.stats.stopped_by, self.stats.to_json())
        finally:
            self._loop = None
            self.metrics.close()
            if self._store is None:
                store.close()
        return self.stats


def _log_invalid(message: Message, reason: str) -> None:
    logger.warning(
        "skipping %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), reason
    )


def run_twin(
    settings: Settings, pipeline: Pipeline | None = None, limits: RunLimits | None = None
) -> TwinStats:
    """Run the twin once: ``TwinStage(settings, pipeline).run(limits)``."""
    return TwinStage(settings, pipeline).run(limits)
