"""The preprocess stage: ``NAME.raw`` -> ``NAME.clean`` / ``NAME.dlq``, in the one batch loop.

`PreprocessStage` plugs `lakeless.preprocess.PreprocessStep` into `lakeless.kafka.BatchLoop`
(consumer group ``lakeless-preprocess`` for the default pipeline): each batch is validated,
filtered and encoded in one call, every output is produced and acknowledged, then the offsets
are committed.

Delivery guarantee: at-least-once. Offsets are committed only after all outputs of their batch
are acknowledged (idempotent producer, ``acks=all``), so a crash between produce and commit
makes the next owner of the partition produce the batch again; duplicates are identified
downstream by key and sequence (or key and time). Nothing is ever dropped silently: every
record read ends up counted in exactly one of clean, dead-lettered or filtered
(`PreprocessStats`).

Time checks: by default (``time_reference="record"``) the validator's ``ts_in_future`` and
``ts_too_old`` checks compare event time with the record timestamp, capped at the wall clock
(``min(record timestamp, now)``): future events are still caught even though the bridge, the
importer and the simulator stamp records with the event's own time; a record stamped at
arrival (the bridge does so for an implausible time) is judged against its ingestion time; and
replaying the raw topic later gives the same verdicts as the first pass. With
``time_reference="wall_clock"`` the validator gets no timestamps: an event rejected as
``ts_in_future`` today would pass on a replay once its time has come.
"""

from __future__ import annotations

import logging

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import BatchLoop, LoopConfig, StageMetrics
from lakeless.lifecycle import RunLimits
from lakeless.pipeline import Pipeline
from lakeless.preprocess._settings import PreprocessSettings
from lakeless.preprocess.process import Preprocessor, PreprocessStep
from lakeless.preprocess.stats import PreprocessStats
from lakeless.preprocess.validate import Validator

__all__ = ["PreprocessError", "PreprocessStage", "run_preprocess"]

logger = logging.getLogger(__name__)


class PreprocessError(KafkaError):
    """The preprocess stage cannot go on: a fatal Kafka error, or outputs Kafka refused."""


class PreprocessStage:
    """Validates ``NAME.raw`` into ``NAME.clean`` and ``NAME.dlq``; `run` until a limit.

    Args:
        settings: connections and the stage's settings (``settings.preprocess``).
        pipeline: the pipeline (default: the built-in car fleet with ``settings.topics``).

    Attributes:
        stats: counts of every record whose outputs Kafka acknowledged (all runs).
        metrics: the stage's Prometheus metrics.

    Raises:
        lakeless.preprocess.FilterError: ``settings.preprocess.where`` does not compile.
    """

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline or Pipeline.builtin(settings)
        config: PreprocessSettings = settings.preprocess
        self.config = config
        schema = self.pipeline.schema
        validator = Validator(
            schema,
            max_bytes=config.max_bytes,
            max_future_ms=config.max_future_ms,
            max_age_ms=config.max_age_ms,
            min_ts_ms=config.min_ts_ms,
        )
        self.preprocessor = Preprocessor(schema, validator, config.where)
        self.stats = PreprocessStats()
        self.metrics = StageMetrics("preprocess")
        self.step = PreprocessStep(
            self.pipeline, self.preprocessor, config.time_reference, self.stats
        )
        self.loop = BatchLoop(
            settings,
            LoopConfig.from_options(
                config,
                group_id=config.group_id or self.pipeline.group("preprocess"),
                topics=(self.pipeline.topics.raw,),
                create_hint=self.pipeline.create_hint,
                guard_outputs=(self.pipeline.topics.clean,),
                reprocess=config.reprocess,
            ),
            self.step,
            error_type=PreprocessError,
            stats=self.stats,
            metrics=self.metrics,
        )

    @property
    def group_id(self) -> str:
        """The consumer group."""
        return self.loop.config.group_id

    def request_stop(self) -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        self.loop.request_stop()

    def run(self, limits: RunLimits | None = None) -> PreprocessStats:
        """Process batches until a limit (default: the settings') or SIGTERM/SIGINT.

        Returns:
            `stats`, the counts over every run of this object.

        Raises:
            PreprocessError: a fatal consumer or producer error, or an output that Kafka did not
                accept; the batch's offsets are then not committed.
        """
        if self.config.metrics_port:
            self.metrics.serve(
                self.config.metrics_port, self.config.metrics_host, self.settings.http
            )
        try:
            self.loop.run(limits or self.config.limits())
        finally:
            self.metrics.close()
        logger.info("preprocess stopping (%s): %s", self.stats.stopped_by, self.stats.to_json())
        return self.stats


def run_preprocess(
    settings: Settings, pipeline: Pipeline | None = None, limits: RunLimits | None = None
) -> PreprocessStats:
    """Run the preprocess stage once: ``PreprocessStage(settings, pipeline).run(limits)``."""
    return PreprocessStage(settings, pipeline).run(limits)
