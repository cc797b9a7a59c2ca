"""The ``score`` stage: the live model embedded in a streaming app, scoring every event.

``NAME.clean`` in, anomaly records to ``NAME.anomalies`` out (and, with ``all_scores``, a score
per event to ``NAME.scores``; see `lakeless.schema.outputs`). The model is followed on the
registry topic and hot-swapped between two batches; a refused model never replaces a working
one. At-least-once or exactly-once (Kafka transactions), in the one batch loop of
`lakeless.kafka`; see ``lakeless.score._stage``, and `run_processes` for ``--processes N``.

Scoring goes through the `lakeless.model.scoring.BatchScorer` protocol, built per live model by
a `ScorerFactory` (ONNX Runtime in-process by default), so a model-server client can be
plugged in (``lakeless score --via URL``: `lakeless.serve.HttpScorerFactory`).

Example:
    >>> ScoreSettings(guarantee="exactly-once").exactly_once
    True
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.score._settings import ScoreSettings

if TYPE_CHECKING:
    from lakeless.score._multi import run_processes
    from lakeless.score._stage import ScoreError, ScoreStage, run_score
    from lakeless.score._stats import ScoreMetrics, ScoreStats
    from lakeless.score._step import ScoreStep

__all__ = [
    "ScoreError",
    "ScoreMetrics",
    "ScoreSettings",
    "ScoreStage",
    "ScoreStats",
    "ScoreStep",
    "run_processes",
    "run_score",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "._multi": ["run_processes"],
        "._stage": ["ScoreError", "ScoreStage", "run_score"],
        "._stats": ["ScoreMetrics", "ScoreStats"],
        "._step": ["ScoreStep"],
    },
)
