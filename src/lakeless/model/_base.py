"""The anomaly-model protocol every lakeless model honours, and the pieces they share.

A model is fitted on a feature matrix (raw units, the pipeline schema's feature order) and, when
present, the failure labels; it scores rows (higher is more anomalous), carries the threshold it
calibrated on held-out data, and exports itself to the ONNX scoring contract of
`lakeless.model.onnx`. Every implementation passes the one contract test suite
(``tests/unit/test_model_contract.py``).

Shared semantics, so that scores of different models read the same way:

- ``score`` is the mean over features of a per-feature error in normalized units;
- ``feature_errors`` are those per-feature errors divided by the feature count, so a row's
  feature errors sum to its score;
- the threshold is a quantile of the scores of held-out calibration rows (never trained on),
  and a row is an anomaly when its score is strictly greater than the threshold.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Self

import numpy as np

from lakeless._mixins import AsDict
from lakeless.errors import LakelessError


class ModelError(LakelessError):
    """A model cannot be fitted, used or exported as asked."""


class NotFittedError(ModelError):
    """The model is used before `BaseAnomalyModel.fit` was called."""


class OnnxMismatchError(ModelError):
    """ONNX Runtime does not reproduce the framework's scores within the tolerance."""


@dataclass(frozen=True)
class TrainProgress:
    """One progress report from a fitting model.

    Attributes:
        epoch: 1-based epoch the report is about.
        epochs: epochs planned (early stopping may end sooner).
        step: batches done in this epoch.
        steps: batches per epoch.
        loss: running training loss of this epoch.
        val_loss: validation loss, at the end of an epoch that has one; else ``None``.
        done: whether the epoch has ended.
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    val_loss: float | None = None
    done: bool = False


#: A callback that receives `TrainProgress` reports while a model fits.
ProgressCallback = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class FitInfo:
    """What one `BaseAnomalyModel.fit` did with its rows.

    Attributes:
        n_rows: rows given to ``fit``.
        n_train: rows the model was trained on (validation rows included).
        n_calibration: held-out rows whose score quantile is the threshold.
        healthy_only: whether only healthy-labelled rows were trained and calibrated on.
        seconds: wall time of the fit.
        holdout_index: indices (into the rows given to ``fit``) never trained on: the
            calibration rows plus, when training on healthy rows only, every labelled failure
            row; evaluating on these rows is fair.
    """

    n_rows: int
    n_train: int
    n_calibration: int
    healthy_only: bool
    seconds: float
    holdout_index: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the index array)."""
        out = asdict(self)
        del out["holdout_index"]
        return out


class BaseAnomalyModel(ABC):
    """The protocol of an anomaly model: fit, score, threshold, export to ONNX.

    Subclasses take their hyperparameters as plain constructor arguments with defaults and store
    each under the same attribute name (so `params` can list them), implement `_fit`,
    `score_with_errors` and `to_onnx`, and set `normalization` while fitting.

    Attributes:
        n_features: feature count the model takes (set by ``fit``).
        feature_names: the input columns' names (set by ``fit``; ``x0``, ``x1``, ... when not
            given).
        threshold: anomaly threshold on the score (set by ``fit``).
        normalization: per-feature ``{"mean": [...], "std": [...]}`` fitted from the data.
        history: per-epoch curves, e.g. ``{"loss": [...], "val_loss": [...]}`` (may be empty).
        fit_info: what the last ``fit`` did.
    """

    threshold_quantile: float
    holdout: float
    healthy_only: bool
    seed: int | None
    #: Which eligible rows calibrate the threshold: ``"random"`` or ``"latest"`` (in time).
    calibration: str = "random"

    def __init__(self) -> None:
        self.n_features: int | None = None
        self.feature_names: tuple[str, ...] = ()
        self.threshold: float | None = None
        self.normalization: dict[str, list[float]] = {}
        self.history: dict[str, list[float]] = {}
        self.fit_info: FitInfo | None = None

    # ---- the protocol -------------------------------------------------------------------------

    def fit(
        self,
        features: np.ndarray,
        labels: Sequence[str | None] | None = None,
        *,
        progress: ProgressCallback | None = None,
        ts: np.ndarray | Sequence[int] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> Self:
        """Fit on a window: train, then calibrate the threshold on held-out rows.

        Args:
            features: ``[n, n_features]`` raw sensor values.
            labels: failure label per row (``None`` = healthy), or ``None`` when unlabelled.
                With `healthy_only` (the default) labelled failure rows are neither trained
                nor calibrated on; without labels every row counts as healthy.
            progress: receives `TrainProgress` reports (for a progress bar).
            ts: event time per row (ms since the epoch); with ``calibration="latest"`` the
                calibration rows are the latest in time. Without it, row order counts as time
                order.
            feature_names: the columns' names (the pipeline schema's features).

        Returns:
            The fitted model.

        Raises:
            ModelError: the input is malformed or too small.
        """
        import time

        started = time.perf_counter()
        x = _check_features(features)
        train_idx, calib_idx, holdout_idx = split_rows(
            len(x),
            labels,
            healthy_only=self.healthy_only,
            holdout=self.holdout,
            seed=self.seed,
            calibration=self.calibration,
            ts=ts,
        )
        if len(train_idx) < 2 or len(calib_idx) < 1:
            raise ModelError(
                f"too few rows to fit: {len(train_idx)} to train, {len(calib_idx)} to calibrate"
            )
        if feature_names is not None and len(feature_names) != x.shape[1]:
            raise ModelError(f"{len(feature_names)} feature names for {x.shape[1]} columns")
        self.n_features = x.shape[1]
        self.feature_names = (
            tuple(feature_names)
            if feature_names is not None
            else tuple(f"x{i}" for i in range(x.shape[1]))
        )
        self._fit(x[train_idx], progress)
        calib_scores = self.score(x[calib_idx])
        self.threshold = calibrate_threshold(calib_scores, self.threshold_quantile)
        self.fit_info = FitInfo(
            n_rows=len(x),
            n_train=len(train_idx),
            n_calibration=len(calib_idx),
            healthy_only=self.healthy_only and labels is not None,
            seconds=round(time.perf_counter() - started, 3),
            holdout_index=holdout_idx,
        )
        return self

    @abstractmethod
    def _fit(self, train: np.ndarray, progress: ProgressCallback | None) -> None:
        """Train on ``train`` (float32, raw units); set `normalization` and `history`."""

    @abstractmethod
    def score_with_errors(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[n]`` and per-feature errors ``[n, n_features]`` (they sum to the score)."""

    @abstractmethod
    def to_onnx(self) -> bytes:
        """The model in the ONNX scoring contract of `lakeless.model.onnx`."""

    # ---- shared behaviour ---------------------------------------------------------------------

    def score(self, features: np.ndarray) -> np.ndarray:
        """Anomaly score per row, ``[n]`` float32; higher is more anomalous."""
        return self.score_with_errors(features)[0]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Whether each row is an anomaly (score strictly above the threshold)."""
        threshold = self._require_threshold()
        return self.score(features) > threshold

    def params(self) -> dict[str, Any]:
        """The constructor arguments (hyperparameters) with their current values, JSON-able."""
        signature = inspect.signature(type(self).__init__)
        out: dict[str, Any] = {}
        for name in signature.parameters:
            if name == "self":
                continue
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def clone(self) -> Self:
        """A new, unfitted model with the same hyperparameters."""
        return type(self)(**self.params())

    def framework_versions(self) -> dict[str, str]:
        """Versions of the libraries the model was built and exported with."""
        return _versions(("numpy", "onnx", "onnxruntime"))

    def metadata(self) -> dict[str, Any]:
        """Everything a registry record needs besides the ONNX bytes, JSON-able."""
        threshold = self._require_threshold()
        return {
            "kind": type(self).__name__,
            "params": self.params(),
            "features": list(self.feature_names),
            "normalization": self.normalization,
            "threshold": threshold,
            "history": self.history,
            "fit": self.fit_info.to_dict() if self.fit_info else None,
            "framework_versions": self.framework_versions(),
        }

    def _require_threshold(self) -> float:
        if self.threshold is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
        return self.threshold

    def _require_features(self, features: np.ndarray) -> np.ndarray:
        if self.n_features is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
        x = _check_features(features)
        if x.shape[1] != self.n_features:
            raise ModelError(f"expected {self.n_features} features per row, got {x.shape[1]}")
        return x


def _check_features(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ModelError(f"features must be a 2-d array [rows, features], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ModelError("features contain NaN or infinite values")
    return x


def _versions(packages: Sequence[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def split_rows(
    n: int,
    labels: Sequence[str | None] | None,
    *,
    healthy_only: bool = True,
    holdout: float = 0.2,
    seed: int | None = None,
    calibration: str = "random",
    ts: np.ndarray | Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split row indices into training, calibration, and never-trained-on rows.

    The calibration rows are a ``holdout`` fraction of the rows eligible for training (healthy
    ones with `healthy_only` and labels; all rows otherwise): a random sample drawn with
    ``seed`` (``calibration="random"``), or the latest rows in time (``"latest"``: train on
    the earlier part of the window, calibrate on its end). A random sample sits next to
    trained rows in time, and a car's readings change slowly, so its scores under-estimate
    those of data the model has never seen; the latest rows are the closer stand-in for the
    window the model will score next.

    Args:
        n: number of rows.
        labels: failure label per row, or ``None`` (unlabelled: every row is eligible).
        healthy_only: train and calibrate on healthy rows only (when labels are given).
        holdout: fraction of eligible rows held out for calibration (0 < holdout < 1).
        seed: seed of the split.
        calibration: ``"random"`` or ``"latest"``.
        ts: event time per row, for ``"latest"`` (``None``: row order is time order); ties
            are broken by row order.

    Returns:
        ``(train, calibration, holdout)`` sorted index arrays; ``holdout`` is calibration plus,
        with `healthy_only`, every labelled failure row.

    Example:
        >>> train, calib, held = split_rows(10, [None] * 8 + ["shock"] * 2, holdout=0.25, seed=1)
        >>> len(train), len(calib), len(held), [8, 9] == held[-2:].tolist()
        (6, 2, 4, True)
        >>> split_rows(5, None, holdout=0.4, calibration="latest", ts=[5, 1, 4, 2, 3])[1]
        array([0, 2])
    """
    if not 0.0 < holdout < 1.0:
        raise ModelError(f"holdout must be between 0 and 1, got {holdout}")
    if labels is not None and len(labels) != n:
        raise ModelError(f"{len(labels)} labels for {n} rows")
    if labels is not None and healthy_only:
        healthy = np.fromiter((label is None for label in labels), dtype=bool, count=n)
    else:
        healthy = np.ones(n, dtype=bool)
    if calibration not in ("random", "latest"):
        raise ModelError(f"calibration must be 'random' or 'latest', got {calibration!r}")
    eligible = np.flatnonzero(healthy)
    n_calib = math.ceil(holdout * len(eligible)) if len(eligible) else 0
    if calibration == "latest":
        times = np.arange(n) if ts is None else np.asarray(ts, dtype=np.int64).reshape(-1)
        if len(times) != n:
            raise ModelError(f"{len(times)} timestamps for {n} rows")
        # Latest first, so the first n_calib rows are the end of the window.
        shuffled = eligible[np.lexsort((-eligible, -times[eligible]))]
    else:
        shuffled = np.random.default_rng(seed).permutation(eligible)
    calib = np.sort(shuffled[:n_calib])
    train = np.sort(shuffled[n_calib:])
    held = np.sort(np.concatenate([calib, np.flatnonzero(~healthy)]))
    return train, calib, held


def calibrate_threshold(scores: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of held-out scores: the anomaly threshold.

    Uses the "higher" quantile (an observed score, never interpolated), so at most a fraction
    ``1 - quantile`` of the calibration rows lie strictly above the threshold.

    Example:
        >>> calibrate_threshold(np.arange(1.0, 11.0), 0.9)
        10.0
    """
    if not 0.0 < quantile < 1.0:
        raise ModelError(f"threshold quantile must be between 0 and 1, got {quantile}")
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ModelError("no calibration scores")
    return float(np.quantile(values, quantile, method="higher"))


@dataclass(frozen=True)
class OnnxCheck(AsDict):
    """How closely ONNX Runtime reproduced a model's own scores.

    Attributes:
        rows: rows compared.
        max_abs_diff: largest absolute score difference.
        max_rel_diff: largest relative score difference (relative to the framework's score).
        max_abs_diff_errors: largest absolute difference of the per-feature errors.
        decisions_differ: rows whose anomaly decision (score > threshold) differs, among rows
            whose score is farther from the threshold than the tolerance.
        rtol: relative tolerance used.
        atol: absolute tolerance used.
    """

    rows: int
    max_abs_diff: float
    max_rel_diff: float
    max_abs_diff_errors: float
    decisions_differ: int
    rtol: float
    atol: float


def check_onnx(
    onnx_bytes: bytes,
    features: np.ndarray,
    expected_scores: np.ndarray,
    expected_errors: np.ndarray | None = None,
    *,
    threshold: float | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> OnnxCheck:
    """Check that ONNX Runtime (via `OnnxScorer`) reproduces a model's scores.

    Args:
        onnx_bytes: the exported model.
        features: ``[n, f]`` raw rows to score.
        expected_scores: the framework's scores of those rows.
        expected_errors: the framework's per-feature errors, to compare too (optional).
        threshold: when given, also count rows whose anomaly decision differs.
        rtol: relative tolerance (``numpy.allclose`` semantics).
        atol: absolute tolerance.

    Returns:
        The differences found.

    Raises:
        OnnxMismatchError: a score (or feature error) differs beyond the tolerance.
        ModelLoadError: the bytes do not honour the scoring contract.
    """
    from lakeless.model.onnx import OnnxScorer

    x = np.asarray(features, dtype=np.float32)
    scorer = OnnxScorer(onnx_bytes, n_features=x.shape[1])
    scores, errors = scorer.score(x)
    want = np.asarray(expected_scores, dtype=np.float64).reshape(-1)
    got = scores.astype(np.float64)
    if got.shape != want.shape:
        raise OnnxMismatchError(f"ONNX gave {got.shape[0]} scores for {want.shape[0]} rows")
    abs_diff = np.abs(got - want)
    rel_diff = abs_diff / np.maximum(np.abs(want), np.finfo(np.float32).tiny)
    err_diff = 0.0
    if expected_errors is not None:
        err_diff = float(np.max(np.abs(errors - expected_errors), initial=0.0))
    decisions = 0
    if threshold is not None:
        # A score within the tolerance of the threshold may fall either side (the threshold is
        # itself one calibration row's score); only decisions beyond the tolerance count.
        clear = np.abs(want - threshold) > atol + rtol * abs(threshold)
        flipped = (got > threshold) != (want > threshold)
        decisions = int(np.count_nonzero(flipped & clear))
    result = OnnxCheck(
        rows=len(want),
        max_abs_diff=float(np.max(abs_diff, initial=0.0)),
        max_rel_diff=float(np.max(rel_diff, initial=0.0)),
        max_abs_diff_errors=err_diff,
        decisions_differ=decisions,
        rtol=rtol,
        atol=atol,
    )
    close = np.allclose(got, want, rtol=rtol, atol=atol)
    if expected_errors is not None:
        close = close and np.allclose(errors, expected_errors, rtol=rtol, atol=atol)
    if not close:
        raise OnnxMismatchError(
            f"ONNX Runtime differs from the model beyond rtol={rtol}, atol={atol}: "
            f"max abs diff {result.max_abs_diff:.3g}, max rel diff {result.max_rel_diff:.3g}, "
            f"feature errors max abs diff {result.max_abs_diff_errors:.3g}"
        )
    return result
