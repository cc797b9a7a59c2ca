"""A per-feature z-score baseline: the simplest model that honours the protocol.

Score = mean over features of the squared z-score (each feature minus its training mean, over
its training standard deviation). It sees only values far outside a feature's healthy range, not
broken relationships between features, which is what the autoencoder adds; it trains in
milliseconds and needs nothing but numpy and ``onnx``, so it is the yardstick and the fast model
of the contract tests.

Example:
    >>> rng = np.random.default_rng(0)
    >>> model = ZScoreModel(seed=0).fit(rng.normal(size=(1000, 3)))
    >>> bool(model.predict(np.array([[0.0, 0.0, 30.0]]))[0])
    True
"""

from __future__ import annotations

import numpy as np

from lakeless.model._base import BaseAnomalyModel, NotFittedError, ProgressCallback
from lakeless.model.onnx import INPUT_NAME, OUTPUT_NAMES


class ZScoreModel(BaseAnomalyModel):
    """Mean squared per-feature z-score.

    Args:
        threshold_quantile: quantile of held-out healthy scores that becomes the threshold.
        holdout: fraction of the eligible rows held out to calibrate the threshold.
        healthy_only: fit on healthy-labelled rows only (when labels are given).
        seed: seed of the calibration split.
    """

    def __init__(
        self,
        threshold_quantile: float = 0.9995,
        holdout: float = 0.2,
        healthy_only: bool = True,
        seed: int | None = 42,
    ) -> None:
        super().__init__()
        self.threshold_quantile = float(threshold_quantile)
        self.holdout = float(holdout)
        self.healthy_only = bool(healthy_only)
        self.seed = seed

    def _fit(self, train: np.ndarray, progress: ProgressCallback | None) -> None:
        mean = train.mean(axis=0, dtype=np.float64)
        std = train.std(axis=0, dtype=np.float64)
        std = np.where(std > 1e-6, std, 1.0)
        self.normalization = {"mean": mean.tolist(), "std": std.tolist()}
        self.history = {}

    def score_with_errors(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[n]`` and per-feature errors ``[n, n_features]`` (float32, as ONNX)."""
        x = self._require_features(features)
        mean = np.asarray(self.normalization["mean"], np.float32)
        inv_std = (1.0 / np.asarray(self.normalization["std"], np.float64)).astype(np.float32)
        z = (x - mean) * inv_std
        errors = (z * z * np.float32(1.0 / x.shape[1])).astype(np.float32)
        return errors.sum(axis=1, dtype=np.float32), errors

    def to_onnx(self) -> bytes:
        """The model as a five-node ONNX graph (Sub, Mul, Mul, Mul, ReduceSum)."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        if self.n_features is None:
            raise NotFittedError("ZScoreModel is not fitted; call fit() first")
        n = self.n_features
        mean = np.asarray(self.normalization["mean"], np.float32)
        inv_std = (1.0 / np.asarray(self.normalization["std"], np.float64)).astype(np.float32)
        inits = [
            numpy_helper.from_array(mean, "mean"),
            numpy_helper.from_array(inv_std, "inv_std"),
            numpy_helper.from_array(np.full(n, 1.0 / n, np.float32), "weight"),
            numpy_helper.from_array(np.array([1], np.int64), "axis"),
        ]
        nodes = [
            helper.make_node("Sub", [INPUT_NAME, "mean"], ["centered"]),
            helper.make_node("Mul", ["centered", "inv_std"], ["z"]),
            helper.make_node("Mul", ["z", "z"], ["z2"]),
            helper.make_node("Mul", ["z2", "weight"], [OUTPUT_NAMES[1]]),
            helper.make_node("ReduceSum", [OUTPUT_NAMES[1], "axis"], [OUTPUT_NAMES[0]], keepdims=0),
        ]
        graph = helper.make_graph(
            nodes,
            "lakeless_zscore",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", n])],
            [
                helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["batch"]),
                helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["batch", n]),
            ],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        data: bytes = model.SerializeToString()
        return data
