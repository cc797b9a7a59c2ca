"""Training without a data lake: a Kafka window in, a registered, checked ONNX model out.

`train` resolves a window to exact offsets, reads it, fits the autoencoder, evaluates it on the
rows it never trained on, writes a report, exports to ONNX (checked against Keras) and
registers the model with its lineage; ``lakeless train`` is the same function on the command
line, and a notebook calls it too. Any registered model's window can be replayed with other
hyperparameters (``TrainSettings(same_window_as="car-autoencoder:3")``).

Importing this package is cheap: TensorFlow loads only when a model is fitted.

Example:
    >>> TrainSettings(last="30m", epochs=5).model_params()["epochs"]
    5
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.train._settings import TrainSettings

if TYPE_CHECKING:
    from lakeless.train._train import (
        TrainError,
        TrainResult,
        parse_offsets,
        settings_window,
        train,
    )

__all__ = [
    "TrainError",
    "TrainResult",
    "TrainSettings",
    "parse_offsets",
    "settings_window",
    "train",
]

__getattr__ = lazy_attributes(
    __name__,
    {"._train": ["TrainError", "TrainResult", "parse_offsets", "settings_window", "train"]},
)
