"""Anomaly models: the Keras autoencoder that trains and the ONNX form that scores.

Importing this package is cheap: TensorFlow/Keras load only when a model is built or trained, and
the scoring side (`OnnxScorer`) needs nothing but ONNX Runtime.
"""

from lakeless.model.onnx import INPUT_NAME, OUTPUT_NAMES, ModelLoadError, OnnxScorer

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "ModelLoadError", "OnnxScorer"]
