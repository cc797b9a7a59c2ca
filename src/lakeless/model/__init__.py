"""Anomaly models: the Keras autoencoder that trains and the ONNX form that scores.

Importing this package is cheap: TensorFlow/Keras load only when a model is built or trained,
matplotlib only when a report is written, and the scoring side (`OnnxScorer`) needs nothing but
ONNX Runtime.

Every model honours `BaseAnomalyModel`: ``fit(features, labels)`` trains and calibrates a
threshold on held-out rows, ``score``/``score_with_errors`` score raw rows, ``to_onnx`` exports
the scoring contract of `lakeless.model.onnx`, ``metadata`` gives the registry fields.
"""

from lakeless.model._base import (
    BaseAnomalyModel,
    FitInfo,
    ModelError,
    NotFittedError,
    OnnxCheck,
    OnnxMismatchError,
    ProgressCallback,
    TrainProgress,
    calibrate_threshold,
    check_onnx,
    split_rows,
)
from lakeless.model._progress import rich_progress
from lakeless.model.autoencoder import Autoencoder
from lakeless.model.evaluate import Evaluation, ModeMetrics, evaluate
from lakeless.model.onnx import INPUT_NAME, OUTPUT_NAMES, ModelLoadError, OnnxScorer
from lakeless.model.report import write_report
from lakeless.model.zscore import ZScoreModel

#: Model classes by name (what ``lakeless train --model`` can choose from).
MODELS: dict[str, type[BaseAnomalyModel]] = {
    "autoencoder": Autoencoder,
    "zscore": ZScoreModel,
}

__all__ = [
    "INPUT_NAME",
    "MODELS",
    "OUTPUT_NAMES",
    "Autoencoder",
    "BaseAnomalyModel",
    "Evaluation",
    "FitInfo",
    "ModeMetrics",
    "ModelError",
    "ModelLoadError",
    "NotFittedError",
    "OnnxCheck",
    "OnnxMismatchError",
    "OnnxScorer",
    "ProgressCallback",
    "TrainProgress",
    "ZScoreModel",
    "calibrate_threshold",
    "check_onnx",
    "evaluate",
    "rich_progress",
    "split_rows",
    "write_report",
]
