"""Training without a data lake: a Kafka window in, a registered, checked ONNX model out.

`train` resolves a window to exact offsets, reads it, fits the autoencoder, evaluates it on the
rows it never trained on, writes a report, exports to ONNX (checked against Keras) and
registers the model with its lineage; ``lakeless train`` is the same function on the command
line, and a notebook calls it too. Any registered model's window can be replayed with other
hyperparameters (``TrainSettings(same_window_as="car-autoencoder:3")``).

Importing this package is cheap: TensorFlow loads only when a model is fitted.

Example:
    >>> from lakeless.dataset import Window
    >>> TrainSettings(window=Window.last("30m"), epochs=5).model_params()["epochs"]
    5
    >>> parse_offsets("0:0-100,1:0-50")
    Window.offsets({0: (0, 100), 1: (0, 50)})
"""

from lakeless.train._train import (
    TrainError,
    TrainResult,
    TrainSettings,
    parse_offsets,
    parse_units,
    train,
)

__all__ = ["TrainError", "TrainResult", "TrainSettings", "parse_offsets", "parse_units", "train"]
