"""The score stage: ``NAME.clean`` -> ``NAME.anomalies`` (and ``NAME.scores``), in the one loop.

`ScoreStage` plugs `lakeless.score.ScoreStep` into `lakeless.kafka.BatchLoop` (consumer group
``lakeless-score`` for the default pipeline, ``read_committed``):

1. between two batches, `lakeless.registry.RegistryFollower.poll`: when another version of the
   model became live and passed validation, the `ScorerFactory` builds its scorer and it
   replaces the current one, so a batch is always scored by one model, and every output names
   the version that produced it (with a `RemoteScorer`, e.g. ``--via URL``, the model server
   picks the model: the outputs name the version and use the threshold it reports); while no
   model is live the partitions are paused and the member stays in its group;
2. the loop consumes a batch, the step decodes and scores it and builds the outputs;
3. at-least-once: every output is acknowledged, then the offsets are committed; exactly-once:
   outputs and offsets are one Kafka transaction, so ``read_committed`` readers see each
   input's outputs exactly once.

Exactly-once and restarts: the producer's ``transactional.id`` is
``<group>.<instance>.<index>`` (instance: ``ScoreSettings.instance``, the host name by
default; index: the worker number of ``--processes``). A restarted scorer with the same id
fences its predecessor and aborts its open transaction at once; two scorers that share an id
fence each other, so give every instance on one host its own ``instance``. An explicit
``instance`` also makes the consumer a static group member (``group.instance.id``): a scorer
restarted within ``session.timeout.ms`` (45 s) takes its partitions back without a rebalance.
"""

from __future__ import annotations

import logging

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import BatchLoop, LoopConfig
from lakeless.lifecycle import RunLimits
from lakeless.model.scoring import OnnxScorerFactory, ScorerFactory
from lakeless.pipeline import Pipeline
from lakeless.registry import ModelRecord, RegistryFollower
from lakeless.score._settings import ScoreSettings
from lakeless.score._stats import ScoreMetrics, ScoreStats
from lakeless.score._step import ScoreStep

__all__ = ["ScoreError", "ScoreStage", "run_score"]

logger = logging.getLogger(__name__)


class ScoreError(KafkaError):
    """The score stage cannot go on: a fatal Kafka error, or outputs Kafka refused."""


class ScoreStage:
    """Scores a pipeline's clean topic with the live model of the registry; `run` until a limit.

    Args:
        settings: connections and the stage's settings (``settings.score``).
        pipeline: the pipeline (default: the built-in car fleet with ``settings.topics``).
        scorer_factory: builds the scorer of each live model (`OnnxScorerFactory` by default,
            with ``settings.score.threads``).
        index: worker number within ``--processes`` (part of ``transactional.id`` and of the
            metrics port).

    Attributes:
        stats: committed counts over every run of this object.
        metrics: the stage's Prometheus metrics.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline | None = None,
        *,
        scorer_factory: ScorerFactory | None = None,
        index: int = 0,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline or Pipeline.builtin(settings)
        config: ScoreSettings = settings.score
        self.config = config
        self.factory: ScorerFactory = scorer_factory or OnnxScorerFactory(config.threads)
        self.index = index
        self.model = config.model or self.pipeline.model
        self.group_id = config.group_id or self.pipeline.group("score")
        self.stats = ScoreStats()
        self.metrics = ScoreMetrics()
        self.step: ScoreStep | None = None
        self._loop: BatchLoop | None = None

    @property
    def live(self) -> ModelRecord | None:
        """The record of the model scoring now."""
        step = self.step
        return step.live.record if step is not None and step.live is not None else None

    def request_stop(self) -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        if self._loop is not None:
            self._loop.request_stop()

    def run(self, limits: RunLimits | None = None) -> ScoreStats:
        """Score batches until a limit (default: the settings') or SIGTERM/SIGINT arrives.

        Returns:
            `stats`, the committed counts over every run of this object.

        Raises:
            ScoreError: a fatal Kafka error, or outputs Kafka did not accept (their offsets are
                then not committed).
            lakeless.registry.RegistryError: the registry topic is missing or unreadable.
        """
        config = self.config
        transactional_id = config.transactional_id(self.group_id, self.index)
        follower = RegistryFollower(
            self.settings,
            self.model,
            features=self.pipeline.schema.feature_names,
            pipeline=self.pipeline.name,
            timeout=config.registry_timeout,
        )
        try:
            if not follower.state.versions(self.model):
                known = ", ".join(follower.state.names()) or "none"
                raise ScoreError(
                    f"model {self.model!r} is not registered on {self.settings.topics.models} "
                    f"(registered: {known}); train one with `lakeless train --promote`"
                )
            self.step = ScoreStep(
                self.pipeline,
                self.factory,
                follower,
                top_k=config.top_k,
                all_scores=config.all_scores,
                stats=self.stats,
                metrics=self.metrics,
            )
            self._loop = BatchLoop(
                self.settings,
                LoopConfig.from_options(
                    config,
                    group_id=self.group_id,
                    topics=(self.pipeline.topics.clean,),
                    create_hint=self.pipeline.create_hint,
                    guarantee=config.guarantee,
                    transactional_id=transactional_id if config.exactly_once else None,
                    instance_id=transactional_id if config.instance else None,
                    transaction_timeout_ms=config.transaction_timeout_ms,
                ),
                self.step,
                error_type=ScoreError,
                stats=self.stats,
                metrics=self.metrics,
            )
            if config.metrics_port:
                self.metrics.serve(
                    config.metrics_port + self.index, config.metrics_host, self.settings.http
                )
            self._loop.run(limits or config.limits())
            if self.step.live is None and self.stats.stopped_by.startswith("idle"):
                raise ScoreError(
                    f"stopped ({self.stats.stopped_by}) while waiting for a live version of "
                    f"model {self.model!r}: promote one with `lakeless models promote "
                    f"{self.model}:VERSION`"
                )
        finally:
            follower.close()
            self.metrics.close()
            self._loop = None
        logger.info(
            "score stopping (%s): %s",
            self.stats.stopped_by,
            self.stats.to_json(),
            extra={"data": self.stats.to_dict()},
        )
        return self.stats


def run_score(
    settings: Settings, pipeline: Pipeline | None = None, limits: RunLimits | None = None
) -> ScoreStats:
    """Run the score stage once: ``ScoreStage(settings, pipeline).run(limits)``."""
    return ScoreStage(settings, pipeline).run(limits)
