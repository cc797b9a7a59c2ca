"""Scoring with ONNX Runtime: the deployed form of every lakeless model.

The contract of an exported model (what `OnnxScorer` checks when it loads one):

- one input ``features``: float32, shape ``[batch, n_features]``, raw sensor values in the units
  of `lakeless.schema` (normalization is inside the model);
- output ``score``: float32 ``[batch]``, the anomaly score (higher is more anomalous);
- output ``feature_errors``: float32 ``[batch, n_features]``, each feature's share of the score,
  so an anomaly can name the features that contribute most.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import onnxruntime as ort

from lakeless.errors import LakelessError

INPUT_NAME: Final = "features"
OUTPUT_NAMES: Final = ("score", "feature_errors")


class ModelLoadError(LakelessError):
    """The ONNX bytes do not load, or the model does not honour the scoring contract."""


class OnnxScorer:
    """Scores feature batches with an ONNX model; one ``run`` per batch.

    Args:
        onnx_bytes: the serialized model.
        n_features: the feature count the model must take.
        intra_op_threads: ONNX Runtime threads per call (1: one core per scorer process).
    """

    def __init__(self, onnx_bytes: bytes, n_features: int, intra_op_threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                onnx_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped exception classes
            raise ModelLoadError(f"ONNX Runtime cannot load the model: {exc}") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if set(inputs) != {INPUT_NAME} or not set(OUTPUT_NAMES) <= outputs:
            raise ModelLoadError(
                f"model has inputs {sorted(inputs)} and outputs {sorted(outputs)}; "
                f"expected input {INPUT_NAME!r} and outputs {list(OUTPUT_NAMES)}"
            )
        shape = inputs[INPUT_NAME].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n_features):
            raise ModelLoadError(f"model input shape {shape} does not take {n_features} features")
        self.n_features = n_features

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[n]`` and per-feature errors ``[n, n_features]`` for ``features [n, f]``."""
        batch = np.ascontiguousarray(features, dtype=np.float32)
        score, errors = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return np.asarray(score).reshape(-1), np.asarray(errors)
