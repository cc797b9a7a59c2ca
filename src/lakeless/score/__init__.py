"""The ``score`` stage: the live model embedded in a streaming app, scoring every event.

``sensor-clean`` in, `Anomaly` records to ``anomalies`` out (and, with ``all_scores``, a
`Score` per event to ``scores``). The model is followed on the registry topic and hot-swapped
between two batches; a refused model never replaces a working one. At-least-once or
exactly-once (Kafka transactions); see ``lakeless.score._stage`` for the cycle, the delivery
guarantees and the rebalance behaviour, `run_processes` for ``--processes N``.

Scoring goes through the `BatchScorer` protocol, built per live model by a `ScorerFactory`
(`OnnxScorerFactory`: ONNX Runtime in-process), so a model-server client can be plugged in
(``lakeless score --via URL``: `lakeless.serve.HttpScorerFactory`, a `RemoteScorer` whose outputs
carry the server's model version).

Example:
    >>> ScoreSettings(guarantee="exactly-once").transactional_id(2).endswith(".2")
    True
"""

from lakeless.score._metrics import ScoreMetrics
from lakeless.score._multi import run_processes
from lakeless.score._output import (
    Anomaly,
    Score,
    TopFeature,
    decode_anomaly,
    decode_score,
    encode_output,
    top_features,
)
from lakeless.score._scorer import (
    BatchScorer,
    OnnxScorerFactory,
    RemoteScorer,
    ScoredBy,
    ScorerFactory,
)
from lakeless.score._stage import (
    DEFAULT_BATCH_MS,
    DEFAULT_BATCH_SIZE,
    ScoreError,
    ScoreSettings,
    ScoreStage,
    run_score,
)
from lakeless.score._stats import ScoreStats

__all__ = [
    "DEFAULT_BATCH_MS",
    "DEFAULT_BATCH_SIZE",
    "Anomaly",
    "BatchScorer",
    "OnnxScorerFactory",
    "RemoteScorer",
    "Score",
    "ScoreError",
    "ScoreMetrics",
    "ScoreSettings",
    "ScoreStage",
    "ScoreStats",
    "ScoredBy",
    "ScorerFactory",
    "TopFeature",
    "decode_anomaly",
    "decode_score",
    "encode_output",
    "run_processes",
    "run_score",
    "top_features",
]
