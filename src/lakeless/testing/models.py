"""Tiny ONNX models that honour the scoring contract of `lakeless.model.onnx`, for tests.

`make_test_onnx` builds, with the ``onnx`` package alone (no TensorFlow), a model that scores a
batch by the mean squared deviation of each feature from a mean:

- input ``features``: float32 ``[N, n_features]``;
- ``feature_errors = ((features - mean) * scale) ** 2 / n_features``, float32 ``[N, n_features]``;
- ``score = sum(feature_errors, axis=1) + bias``, float32 ``[N]``.

Different ``bias`` values give different bytes (and sha256), which is all a registry test needs to
tell versions apart. ``onnx`` comes with the ``train`` extra.

Example:
    >>> import numpy as np
    >>> from lakeless.model import OnnxScorer
    >>> scorer = OnnxScorer(make_test_onnx(n_features=3, bias=0.5), n_features=3)
    >>> score, errors = scorer.score(np.array([[1.0, 1.0, 1.0]]))
    >>> float(score[0]), errors.shape
    (1.5, (1, 3))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lakeless.examples import car_fleet
from lakeless.model.onnx import INPUT_NAME, OUTPUT_NAMES

__all__ = ["FEATURES", "make_test_onnx"]

#: The car fleet's features, the default pipeline's model inputs.
FEATURES = car_fleet().feature_names

#: Kept low so that every ONNX Runtime a user may have installed loads the models.
_OPSET = 17
_IR_VERSION = 8


def make_test_onnx(
    n_features: int = 18,
    bias: float = 0.0,
    *,
    mean: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    input_name: str = INPUT_NAME,
    padding_bytes: int = 0,
) -> bytes:
    """Serialized ONNX model that honours the scoring contract (see the module docstring).

    Args:
        n_features: width of the ``features`` input (fixed in the graph).
        bias: added to every score; use it to make distinct models.
        mean: per-feature mean subtracted first (zeros by default).
        scale: per-feature factor applied after the mean (ones by default).
        input_name: name of the input; anything but ``"features"`` breaks the contract (for
            negative tests).
        padding_bytes: size of an unused initializer added to the graph, to make a large model
            (e.g. to test how big records travel).

    Returns:
        The model as bytes, ready for `lakeless.model.OnnxScorer` or the registry.
    """
    mean_values = np.zeros(n_features, np.float32) if mean is None else np.asarray(mean, np.float32)
    scale_values = (
        np.ones(n_features, np.float32) if scale is None else np.asarray(scale, np.float32)
    )
    if mean_values.shape != (n_features,) or scale_values.shape != (n_features,):
        raise ValueError(f"mean and scale must have {n_features} values")
    initializers = [
        numpy_helper.from_array(mean_values, "mean"),
        numpy_helper.from_array(scale_values, "scale"),
        numpy_helper.from_array(np.array([n_features], np.float32), "n"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.array([bias], np.float32), "bias"),
    ]
    if padding_bytes > 0:
        padding = np.frombuffer(np.random.default_rng(0).bytes(padding_bytes), np.uint8)
        initializers.append(numpy_helper.from_array(padding, "padding"))
    score_name, errors_name = OUTPUT_NAMES
    nodes = [
        helper.make_node("Sub", [input_name, "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "scaled"], ["squared"]),
        helper.make_node("Div", ["squared", "n"], [errors_name]),
        helper.make_node("ReduceSum", [errors_name, "axes"], ["total"], keepdims=0),
        helper.make_node("Add", ["total", "bias"], [score_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "lakeless-test-model",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n_features])],
        [
            helper.make_tensor_value_info(score_name, TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info(errors_name, TensorProto.FLOAT, ["N", n_features]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="lakeless.testing",
        opset_imports=[helper.make_opsetid("", _OPSET)],
        ir_version=_IR_VERSION,
    )
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
