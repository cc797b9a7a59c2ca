"""The talk's model, done right: a dense Keras 3 autoencoder scored by reconstruction error.

The network learns to reconstruct healthy readings in normalized units (each feature minus its
mean, over its standard deviation, both fitted from the training window). A reading that breaks
the relationships between the features of a healthy car (one tire softer than the other three,
coolant too hot for the load, vibration too strong for the speed) reconstructs badly: its score
is the mean squared reconstruction error over the features, and each feature's share of it names
what is wrong. By default (``error_scale="residual"``) each feature's squared error is divided by
its mean over the training rows first, so a feature the network reconstructs tightly weighs as
much as a noisy one; ``error_scale="none"`` gives the talk's plain mean squared error.

The exported ONNX model does everything from raw units: normalization, the network, the squared
error. Keras and TensorFlow are imported only when a model is fitted, scored with Keras or
exported, never by ``import lakeless.model``.

Example:
    >>> from lakeless.fleet import Fleet
    >>> fleet = Fleet(cars=20, seed=1, start=0)
    >>> x = np.concatenate([fleet.step().values for _ in range(50)])
    >>> model = Autoencoder(epochs=2, seed=0).fit(x)
    >>> model.threshold > 0, model.score(x[:3]).shape
    (True, (3,))
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lakeless.model._base import (
    BaseAnomalyModel,
    ModelError,
    NotFittedError,
    ProgressCallback,
    TrainProgress,
    _versions,
)
from lakeless.model._quiet import native_stderr_silenced
from lakeless.model.onnx import INPUT_NAME, OUTPUT_NAMES

log = logging.getLogger(__name__)

#: Standard deviations below this are treated as constant features (scaled by 1).
_MIN_STD = 1e-6
#: Training steps Keras runs per call into TensorFlow (``compile(steps_per_execution=...)``):
#: the same steps and result, but Python is left once per 16 batches instead of every batch,
#: which leaves the interpreter free for a reader feeding ``tf.data`` from Kafka.
STEPS_PER_EXECUTION = 16


def _keras() -> Any:
    """Import Keras on the TensorFlow backend, quietly."""
    # 3: TensorFlow's C++ logging prints errors only (no cuInit / CPU-feature noise on stderr).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with native_stderr_silenced():
        import keras
        import tensorflow  # noqa: F401 (loaded here, quietly, rather than at first use)

    return keras


class Autoencoder(BaseAnomalyModel):
    """Dense autoencoder anomaly model (Keras 3, TensorFlow backend).

    Args:
        units: hidden layer widths; the output layer (linear, one unit per feature) is added.
            The default is the talk's 18 -> 14 -> 7 -> 7 -> 14 -> 18.
        activation: activation of the hidden layers.
        epochs: training epochs (at most, with early stopping).
        batch_size: rows per gradient step.
        learning_rate: Adam learning rate.
        validation_split: fraction of training rows used for the validation loss curve
            (and early stopping); 0 disables it.
        patience: stop after this many epochs without a better validation loss and keep the
            best weights; ``None`` trains all epochs.
        threshold_quantile: quantile of held-out healthy scores that becomes the threshold.
            0.9995 aims at 5 false alarms per 10,000 healthy events, the target the integration
            tests hold the model to; lower it for earlier but noisier alarms.
        error_scale: ``"residual"`` divides each feature's squared error by its mean on the
            training rows (standardized residuals), so a feature the network reconstructs
            tightly (four tires that agree) counts as much as a noisy one (current under
            transients); ``"none"`` is the talk's plain mean squared error in normalized
            units. Measured on the simulator, ``"residual"`` lifts tire-pressure recall from
            under 1 % to about 96 % at the same false-alarm rate.
        aggregation: how a row's score comes from its feature errors (after ``error_scale``):
            ``"mean"`` over the features (the talk's), ``"max"`` (the largest one: a single
            broken feature is not diluted by the others) or ``"topK"`` such as ``"top3"`` (the
            mean of the K largest). The feature errors are always each feature's share of the
            score (they sum to it).
        holdout: fraction of the eligible rows held out to calibrate the threshold.
        calibration: which rows those are: ``"random"`` (a random sample) or ``"latest"`` (the
            end of the window in time; pass ``ts`` to `fit`). A random sample sits next to
            trained rows in time and under-estimates the threshold for later data; see
            `lakeless.model.split_rows`.
        healthy_only: train on healthy-labelled rows only; ``False`` (or no labels) trains on
            every row, for windows without labels (failures are rare enough to be outliers).
        seed: seeds the split, the weights and the shuffling; with a seed TensorFlow is
            switched to deterministic ops (process-wide), so a refit gives the same scores.
    """

    def __init__(
        self,
        units: Sequence[int] = (14, 7, 7, 14),
        activation: str = "relu",
        epochs: int = 20,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        validation_split: float = 0.1,
        patience: int | None = None,
        threshold_quantile: float = 0.9995,
        error_scale: str = "residual",
        aggregation: str = "mean",
        holdout: float = 0.2,
        healthy_only: bool = True,
        seed: int | None = 42,
        calibration: str = "latest",
    ) -> None:
        super().__init__()
        if calibration not in ("random", "latest"):
            raise ModelError(f"calibration must be 'random' or 'latest', got {calibration!r}")
        if not units or any(int(u) < 1 for u in units):
            raise ModelError(f"units must be positive layer widths, got {units!r}")
        if epochs < 1 or batch_size < 1 or learning_rate <= 0:
            raise ModelError("epochs, batch_size and learning_rate must be positive")
        if not 0.0 <= validation_split < 1.0:
            raise ModelError(f"validation_split must be in [0, 1), got {validation_split}")
        self.units = tuple(int(u) for u in units)
        self.activation = activation
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.validation_split = float(validation_split)
        self.patience = patience
        if error_scale not in ("residual", "none"):
            raise ModelError(f"error_scale must be 'residual' or 'none', got {error_scale!r}")
        if _aggregation_k(aggregation) is None:
            raise ModelError(f"aggregation must be 'mean', 'max' or 'topK', got {aggregation!r}")
        self.threshold_quantile = float(threshold_quantile)
        self.error_scale = error_scale
        self.aggregation = aggregation
        self.holdout = float(holdout)
        self.healthy_only = bool(healthy_only)
        self.seed = seed
        self.calibration = calibration
        #: Per-feature divisor of the squared error (see ``error_scale``), set by ``fit``.
        self.feature_scale: list[float] = []
        self._network: Any = None  # normalized features -> reconstruction
        self._scoring: Any = None  # raw features -> {"score", "feature_errors"}

    # ---- training -----------------------------------------------------------------------------

    def _fit(self, train: np.ndarray, progress: ProgressCallback | None) -> None:
        keras = _keras()
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        mean = train.mean(axis=0, dtype=np.float64)
        std = train.std(axis=0, dtype=np.float64)
        std = np.where(std > _MIN_STD, std, 1.0)
        self.normalization = {"mean": mean.tolist(), "std": std.tolist()}
        z = ((train - mean) / std).astype(np.float32)
        # Keras takes the validation rows from the end: shuffle so they are a random sample.
        z = z[np.random.default_rng(self.seed).permutation(len(z))]

        n = train.shape[1]
        network = keras.Sequential(name="autoencoder")
        network.add(keras.Input((n,), name="normalized"))
        for i, width in enumerate(self.units):
            network.add(keras.layers.Dense(width, activation=self.activation, name=f"hidden_{i}"))
        network.add(keras.layers.Dense(n, name="reconstruction"))
        network.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="mse",
            steps_per_execution=STEPS_PER_EXECUTION,
        )

        callbacks: list[Any] = []
        validation = self.validation_split if len(z) * self.validation_split >= 1 else 0.0
        if self.patience is not None and validation > 0:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    patience=self.patience, restore_best_weights=True, monitor="val_loss"
                )
            )
        if progress is not None:
            steps = -(-int(len(z) * (1.0 - validation)) // self.batch_size)
            callbacks.append(_progress_callback(keras, progress, self.epochs, steps))
        result = network.fit(
            z,
            z,
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_split=validation,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
        self.history = {
            key: [float(v) for v in values] for key, values in sorted(result.history.items())
        }
        self._network = network
        self._scoring = None
        if self.error_scale == "residual":
            recon = network.predict(z, batch_size=8192, verbose=0)
            mse = np.mean(np.square(recon - z), axis=0, dtype=np.float64)
            # A floor keeps a perfectly reconstructed feature from dividing by ~zero.
            mse = np.maximum(mse, 1e-6 + 1e-3 * float(mse.mean()))
            self.feature_scale = mse.tolist()
        else:
            self.feature_scale = [1.0] * n

    # ---- scoring ------------------------------------------------------------------------------

    def scoring_model(self) -> Any:
        """The Keras model from raw features to ``{"score", "feature_errors"}`` (the export)."""
        if self._network is None:
            raise NotFittedError("Autoencoder is not fitted; call fit() first")
        if self._scoring is None:
            self._scoring = _build_scoring_model(
                _keras(),
                self._network,
                self.normalization["mean"],
                self.normalization["std"],
                self.feature_scale,
                self.aggregation,
            )
        return self._scoring

    def score_with_errors(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[n]`` and per-feature errors ``[n, n_features]``, computed by Keras."""
        x = self._require_features(features)
        model = self.scoring_model()
        if len(x) == 0:
            return np.zeros(0, np.float32), np.zeros((0, x.shape[1]), np.float32)
        out = model.predict(x, batch_size=8192, verbose=0)
        return (
            np.asarray(out["score"], dtype=np.float32).reshape(-1),
            np.asarray(out["feature_errors"], dtype=np.float32),
        )

    # ---- export -------------------------------------------------------------------------------

    def to_onnx(self) -> bytes:
        """Export the scoring model to ONNX bytes honouring `lakeless.model.onnx`'s contract.

        Uses Keras' own ONNX export, then names the batch dimension ``batch`` and checks (and if
        needed renames) the input and outputs.

        Raises:
            NotFittedError: the model is not fitted.
            ModelError: the exported graph does not have the contract's input and outputs.
        """
        model = self.scoring_model()
        assert self.n_features is not None
        model(np.zeros((1, self.n_features), np.float32))  # Keras exports only called models
        with tempfile.TemporaryDirectory(prefix="lakeless-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            with warnings.catch_warnings(), native_stderr_silenced():
                warnings.simplefilter("ignore")  # tf2onnx's numpy deprecation warnings
                model.export(str(path), format="onnx", verbose=False)
            data = path.read_bytes()
        return fix_contract_names(data)

    def metadata(self) -> dict[str, Any]:
        """The registry fields, plus the per-feature error scale."""
        return {**super().metadata(), "feature_scale": self.feature_scale}

    def framework_versions(self) -> dict[str, str]:
        """Versions of Keras, TensorFlow, ONNX and ONNX Runtime (and numpy)."""
        return _versions(("keras", "tensorflow", "numpy", "onnx", "onnxruntime", "tf2onnx"))


def _progress_callback(keras: Any, progress: ProgressCallback, epochs: int, steps: int) -> Any:
    class _Progress(keras.callbacks.Callback):  # type: ignore[misc]
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            loss = float((logs or {}).get("loss", float("nan")))
            # With steps_per_execution Keras reports once per execution, and the last one's
            # index as if it were full: clamp to the epoch's steps.
            progress(TrainProgress(self.epoch, epochs, min(batch + 1, steps), steps, loss))

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            val = logs.get("val_loss")
            progress(
                TrainProgress(
                    epoch + 1,
                    epochs,
                    steps,
                    steps,
                    float(logs.get("loss", float("nan"))),
                    None if val is None else float(val),
                    done=True,
                )
            )

    return _Progress()


def _build_scoring_model(
    keras: Any,
    network: Any,
    mean: Sequence[float],
    std: Sequence[float],
    scale: Sequence[float],
    aggregation: str = "mean",
) -> Any:
    n = len(mean)
    k = _aggregation_k(aggregation)
    if k is None:
        raise ModelError(f"aggregation must be 'mean', 'max' or 'topK', got {aggregation!r}")
    top_k: int = min(k, n)
    weight = (1.0 / (n * np.asarray(scale, np.float64))).astype(np.float32)

    # Normalization constants must be weights (graph initializers): Keras' Normalization layer
    # exports its mean and variance as extra graph inputs, which breaks the one-input contract.
    class Standardize(keras.layers.Layer):  # type: ignore[misc]
        def build(self, input_shape: Any) -> None:
            self.mean = self.add_weight(
                shape=(n,),
                initializer=keras.initializers.Constant(np.asarray(mean, np.float32)),
                trainable=False,
                name="mean",
            )
            self.inv_std = self.add_weight(
                shape=(n,),
                initializer=keras.initializers.Constant(1.0 / np.asarray(std, np.float32)),
                trainable=False,
                name="inv_std",
            )

        def call(self, x: Any) -> Any:
            return (x - self.mean) * self.inv_std

    class ReconstructionError(keras.layers.Layer):  # type: ignore[misc]
        def build(self, z_shape: Any, reconstruction_shape: Any = None) -> None:
            self.weight = self.add_weight(
                shape=(n,),
                initializer=keras.initializers.Constant(weight),
                trainable=False,
                name="weight",
            )

        def call(self, z: Any, reconstruction: Any) -> Any:
            return keras.ops.square(reconstruction - z) * self.weight

    class RowSum(keras.layers.Layer):  # type: ignore[misc]
        def call(self, errors: Any) -> Any:
            return keras.ops.sum(errors, axis=1)

    class TopMean(keras.layers.Layer):  # type: ignore[misc]
        """The mean of the k largest errors (x n: in units of one feature's error)."""

        def call(self, errors: Any) -> Any:
            if top_k == 1:
                return keras.ops.max(errors, axis=1) * float(n)
            top = keras.ops.top_k(errors, top_k, sorted=False)[0]
            return keras.ops.mean(top, axis=1) * float(n)

    class Share(keras.layers.Layer):  # type: ignore[misc]
        """Each feature's share of the score: the errors rescaled to sum to it."""

        def call(self, errors: Any, total: Any, score: Any) -> Any:
            ratio = score / keras.ops.maximum(total, 1e-30)
            return errors * keras.ops.expand_dims(ratio, 1)

    raw = keras.Input((n,), name=INPUT_NAME, dtype="float32")
    z = Standardize(name="standardize")(raw)
    errors = ReconstructionError(name="feature_errors")(z, network(z))
    total = RowSum(name="total")(errors)
    if k == _MEAN:
        score, shares = total, errors
    else:
        score = TopMean(name="top")(errors)
        shares = Share(name="share")(errors, total, score)
    return keras.Model(raw, {"score": score, "feature_errors": shares}, name="lakeless_scoring")


_MEAN = 0


def _aggregation_k(aggregation: str) -> int | None:
    """0 for ``"mean"``, 1 for ``"max"``, K for ``"topK"``; ``None``: not an aggregation."""
    if aggregation == "mean":
        return _MEAN
    if aggregation == "max":
        return 1
    digits = aggregation.removeprefix("top")
    if aggregation.startswith("top") and digits.isdigit() and int(digits) >= 1:
        return int(digits)
    return None


def fix_contract_names(onnx_bytes: bytes) -> bytes:
    """Give an exported graph the contract's names: input ``features``, a ``batch`` dimension.

    Outputs are matched by rank when their names differ from the contract (``score`` is the
    rank-1 output, ``feature_errors`` the rank-2 one).

    Raises:
        ModelError: the graph does not have one input and the two outputs.
    """
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) < 2:
        raise ModelError(
            f"exported graph has inputs {[i.name for i in inputs]} and outputs "
            f"{[o.name for o in graph.output]}; expected one input and two outputs"
        )
    renames = {inputs[0].name: INPUT_NAME}
    for out in graph.output:
        rank = len(out.type.tensor_type.shape.dim)
        want = {1: OUTPUT_NAMES[0], 2: OUTPUT_NAMES[1]}.get(rank)
        if out.name not in OUTPUT_NAMES and want is not None:
            renames[out.name] = want
    for old, new in renames.items():
        if old == new:
            continue
        for node in graph.node:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
        for value in (*graph.input, *graph.output):
            if value.name == old:
                value.name = new
    for value in (*inputs, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    names = {o.name for o in graph.output}
    if not set(OUTPUT_NAMES) <= names:
        raise ModelError(f"exported graph has outputs {sorted(names)}, expected {OUTPUT_NAMES}")
    onnx.checker.check_model(proto)
    data: bytes = proto.SerializeToString()
    return data
