"""The seam between a scorer (the score stage, the model server) and whatever computes scores.

The score stage never talks to ONNX Runtime directly: it asks a `ScorerFactory` for a
`BatchScorer` each time a model becomes live, and calls `BatchScorer.score` once per batch. The
default factory, `OnnxScorerFactory`, embeds the model in the process (ONNX Runtime, one
intra-op thread by default); a model-server client (HTTP, gRPC) plugs in by implementing the same
two-method contract. A client whose server follows the registry on its own (so the model that
scores a batch is the server's, not the stage's) is a `RemoteScorer`: it also reports, in
``scored_by``, the model that scored its last batch, and the stage writes that name, version and
threshold into the outputs (``lakeless.serve.HttpScorerFactory`` is one).

Example:
    >>> import numpy as np
    >>> from lakeless.registry import build_record
    >>> from lakeless.testing.models import make_test_onnx
    >>> from lakeless.testing.models import FEATURES
    >>> record = build_record("m", 1, make_test_onnx(bias=1.0), threshold=2.0, features=FEATURES)
    >>> scorer = OnnxScorerFactory()(record)
    >>> scores, errors = scorer.score(np.zeros((2, 18), np.float32))
    >>> scores.tolist(), errors.shape
    ([1.0, 1.0], (2, 18))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from lakeless.model.onnx import ModelLoadError, OnnxScorer
from lakeless.registry import ModelRecord

__all__ = ["BatchScorer", "OnnxScorerFactory", "RemoteScorer", "ScoredBy", "ScorerFactory"]


@runtime_checkable
class BatchScorer(Protocol):
    """Scores one batch of raw feature rows (the units of the pipeline's schema).

    ``score(features [n, f]) -> (scores [n], feature_errors [n, f])``; ``feature_errors`` is
    each feature's share of the score, used to name the features that contribute most.
    """

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and per-feature errors for ``features``."""
        ...


@dataclass(frozen=True)
class ScoredBy:
    """The model that scored a batch, as a `RemoteScorer` reports it.

    Attributes:
        name: model name.
        version: model version.
        threshold: that version's anomaly threshold.
    """

    name: str
    version: int
    threshold: float

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


@runtime_checkable
class RemoteScorer(BatchScorer, Protocol):
    """A `BatchScorer` whose model is chosen elsewhere (a model server following the registry).

    ``scored_by`` is the model that scored the last ``score`` call (``None`` before the first);
    the stage takes the outputs' model name, version and threshold from it, not from the record
    its own registry follower handed to the `ScorerFactory`.
    """

    scored_by: ScoredBy | None


class ScorerFactory(Protocol):
    """Builds the `BatchScorer` for a newly live, validated model record.

    Raise `lakeless.model.onnx.ModelLoadError` to refuse it: the current model keeps scoring.
    A factory is pickled into every worker process of ``--processes N``.
    """

    def __call__(self, record: ModelRecord) -> BatchScorer:
        """A scorer for ``record``."""
        ...


@dataclass(frozen=True)
class OnnxScorerFactory:
    """Embeds the model with ONNX Runtime in this process (`lakeless.model.OnnxScorer`).

    Attributes:
        intra_op_threads: ONNX Runtime threads per ``run``; 1 lets N processes use N cores.
    """

    intra_op_threads: int = 1

    def __call__(self, record: ModelRecord) -> BatchScorer:
        """An `OnnxScorer` for the record's inline ONNX bytes."""
        if record.onnx is None:
            raise ModelLoadError(f"model {record.ref} has no inline ONNX bytes")
        return OnnxScorer(record.onnx, len(record.features), self.intra_op_threads)
