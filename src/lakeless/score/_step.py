"""The score stage's step: a batch of clean records in, anomaly (and score) records out.

`ScoreStep` is pure given its live model: one vectorized decode of the batch
(`lakeless.pipeline.Pipeline.decoder`), the model's input columns taken from the feature matrix
by name, one `lakeless.model.scoring.BatchScorer` call, ``anomaly = not score <= threshold``
(a non-finite score is an anomaly, never "normal"), and the outputs. Between batches it asks
the `lakeless.registry.RegistryFollower` for a newly promoted model and swaps it in; a model
its factory refuses is logged and the current one keeps scoring.

Outputs are stamped with the wall clock (record timestamp 0); the event time is in the
payload, so outputs of historical data are kept like any other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from confluent_kafka import Message

from lakeless.kafka import BaseStep, BatchResult, Output
from lakeless.model.onnx import ModelLoadError
from lakeless.model.scoring import BatchScorer, RemoteScorer, ScoredBy, ScorerFactory
from lakeless.pipeline import Pipeline
from lakeless.registry import ModelRecord, RegistryFollower
from lakeless.schema import CleanBatch
from lakeless.schema.outputs import OutputCodec, top_features
from lakeless.score._stats import ScoreMetrics, ScoreStats

__all__ = ["ScoreStep"]

logger = logging.getLogger(__name__)

_INVALID_LOG_INTERVAL: Final = 10.0


@dataclass
class _Live:
    """The model scoring now, and where its inputs sit in the pipeline's feature matrix."""

    record: ModelRecord
    scorer: BatchScorer
    columns: list[int] | None  # None: the pipeline's features, in order


@dataclass
class _Counts:
    anomalies: int = 0
    ref: str = ""
    by: dict[str, int] = field(default_factory=dict)


class ScoreStep(BaseStep):
    """Scores clean records with the live model of the registry.

    Args:
        pipeline: the pipeline (schema, topics).
        factory: builds the scorer of each live model.
        follower: follows the model on the registry (``None``: call `swap` yourself).
        top_k: features named per anomaly.
        all_scores: also produce a score record per event.
        stats: where committed batches are counted.
        metrics: where inference times go.
    """

    name = "score"

    def __init__(
        self,
        pipeline: Pipeline,
        factory: ScorerFactory,
        follower: RegistryFollower | None,
        *,
        top_k: int = 3,
        all_scores: bool = False,
        stats: ScoreStats | None = None,
        metrics: ScoreMetrics | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.factory = factory
        self.follower = follower
        self.top_k = top_k
        self.all_scores = all_scores
        self.stats = stats if stats is not None else ScoreStats()
        self.metrics = metrics if metrics is not None else ScoreMetrics()
        self.outputs = OutputCodec(pipeline.schema)
        self.decoder = pipeline.decoder()
        self.live: _Live | None = None
        self._invalid_logged = 0.0
        if follower is not None and follower.current is not None:
            self.swap(follower.current)

    # ---- models -------------------------------------------------------------------------

    def ready(self) -> bool:
        """A model is live."""
        return self.live is not None

    def waiting_for(self) -> str:
        """What a scorer without a model waits for."""
        name = self.follower.name if self.follower is not None else "the model"
        return f"a live version of model {name} (promote one with `lakeless models promote`)"

    def before_batch(self) -> None:
        """Swap in a newly promoted model, if the registry has one."""
        if self.follower is not None:
            record = self.follower.poll()
            if record is not None:
                self.swap(record)

    def swap(self, record: ModelRecord) -> bool:
        """Score with ``record`` from the next batch on; ``False`` if its scorer is refused."""
        keeping = self.live.record.ref if self.live else "no model"
        try:
            scorer = self.factory(record)
        except ModelLoadError as exc:
            logger.error("refused model %s: %s (keeping %s)", record.ref, exc, keeping)
            return False
        names = self.pipeline.schema.feature_names
        columns = [names.index(f) for f in record.features]
        previous = self.live.record.ref if self.live else None
        self.live = _Live(record, scorer, None if columns == list(range(len(names))) else columns)
        self.stats.swaps += 1
        self.metrics.model_version.labels(record.name).set(record.version)
        logger.info(
            "scoring with model %s (threshold %g)%s",
            record.ref,
            record.threshold,
            f", replacing {previous}" if previous else "",
        )
        return True

    # ---- one batch ------------------------------------------------------------------------

    def process(self, messages: list[Message]) -> BatchResult:
        """Decode, score and turn a batch into outputs."""
        live = self.live
        assert live is not None  # the loop only calls process when ready()
        values = [m.value() for m in messages]
        # Strings (key, label) are decoded for every record only when every record gets an
        # output; otherwise only for the anomalies, below.
        batch, kept, problems = self.decoder.decode_valid(values, strings=self.all_scores)
        if problems:
            self._log_invalid(messages, problems)
        if kept and len(kept) != len(messages):
            messages = [messages[i] for i in kept]
            values = [values[i] for i in kept]
        record: ModelRecord | ScoredBy = live.record
        outputs: list[Output] = []
        counts = _Counts()
        if len(batch):
            matrix = batch.features(np.float32)
            inputs = matrix if live.columns is None else matrix[:, live.columns]
            began = time.perf_counter()
            scores, errors = live.scorer.score(inputs)
            self.metrics.inference.observe(time.perf_counter() - began)
            if isinstance(live.scorer, RemoteScorer) and live.scorer.scored_by is not None:
                record = live.scorer.scored_by
            threshold = record.threshold
            flags = ~(scores <= threshold)  # NaN: an anomaly
            hits = np.flatnonzero(flags).tolist()
            counts.anomalies = len(hits)
            encode = self.outputs.encode
            if hits:
                outputs += self._anomalies(
                    live, record, batch, values, messages, hits, scores, errors
                )
            if self.all_scores:
                topic = self.pipeline.topics.scores
                # The generated class itself: `OutputCodec.score` adds a call per record.
                make_score: Any = self.outputs.score_type
                extra: dict[str, int] = {}
                sequence = batch.sequence
                seqs = sequence.tolist() if sequence is not None else None
                name, version = record.name, record.version
                for i, (key, t, value, flag) in enumerate(
                    zip(
                        batch.key, batch.time.tolist(), scores.tolist(), flags.tolist(), strict=True
                    )
                ):
                    if seqs is not None:
                        extra["sequence"] = seqs[i]
                    scored = make_score(
                        key=key,
                        time=t,
                        score=value,
                        threshold=threshold,
                        anomaly=flag,
                        model=name,
                        model_version=version,
                        **extra,
                    )
                    outputs.append((topic, encode(scored), key.encode(), 0, None))
        counts.ref = record.ref
        return BatchResult(outputs, invalid=len(problems), payload=(counts, len(batch)))

    def _anomalies(
        self,
        live: _Live,
        record: ModelRecord | ScoredBy,
        batch: CleanBatch,
        values: list[Any],
        messages: list[Message],
        hits: list[int],
        scores: np.ndarray,
        errors: np.ndarray,
    ) -> list[Output]:
        """The anomaly records of rows ``hits`` (their strings decoded here if not yet)."""
        rows = batch.select(hits) if batch.strings[batch.schema.key] else None
        if rows is None:  # decode the anomalies again, with strings (any schema version)
            rows = self.decoder.decode([values[i] for i in hits], strings=True)
        # The raw values the model saw, exactly (float64), for the top features.
        raw = rows.features(np.float64)
        if live.columns is not None:
            raw = raw[:, live.columns]
        tops = top_features(raw, np.asarray(errors)[hits], self.top_k, live.record.features)
        times = rows.time.tolist()
        sequence = rows.sequence
        seqs = sequence.tolist() if sequence is not None else [None] * len(hits)
        keys, labels = rows.key, rows.label
        topic = self.pipeline.topics.anomalies
        anomaly, encode = self.outputs.anomaly, self.outputs.encode
        out: list[Output] = []
        for j, (i, top) in enumerate(zip(hits, tops, strict=True)):
            message = messages[i]
            built = anomaly(
                key=keys[j],
                time=times[j],
                sequence=seqs[j],
                score=float(scores[i]),
                threshold=record.threshold,
                model=record.name,
                model_version=record.version,
                top_features=top,
                label=labels[j],
                source=f"{message.topic()}[{message.partition()}]@{message.offset()}",
            )
            out.append((topic, encode(built), keys[j].encode(), 0, None))
        return out

    def committed(self, result: BatchResult, n: int) -> None:
        """Count a committed batch."""
        counts, scored = result.payload
        self.stats.anomalies += counts.anomalies
        if scored:
            self.stats.by_model[counts.ref] += scored
        self.metrics.anomalies.inc(counts.anomalies)

    def progress(self) -> dict[str, Any]:
        """The live model, for the progress line."""
        return {"model": self.live.record.ref if self.live else None}

    def _log_invalid(self, messages: list[Message], problems: list[Any]) -> None:
        now = time.monotonic()
        if now - self._invalid_logged < _INVALID_LOG_INTERVAL:
            return
        self._invalid_logged = now
        first = problems[0]
        message = messages[first.index]
        logger.warning(
            "skipping %d record(s) that are not clean records of pipeline %s, first %s[%d]@%d: %s",
            len(problems),
            self.pipeline.name,
            message.topic(),
            message.partition(),
            message.offset(),
            first.reason,
        )
