"""What the scorer writes: `Anomaly` records to ``anomalies`` and `Score` records to ``scores``.

Both are JSON objects (msgspec), keyed by car id, stamped with the event time. Every record names
the model name and version that produced it, so a hot swap is visible record by record.

Example:
    >>> anomaly = Anomaly(
    ...     car_id="car-1", ts=5, seq=7, score=3.5, threshold=2.0, model="car-ae",
    ...     model_version=2, top_features=[TopFeature("coolant_temp", 140.0, 3.1)],
    ...     failure="overheating", source="sensor-clean[0]@42",
    ... )
    >>> decode_anomaly(encode_output(anomaly)) == anomaly
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np

from lakeless.schema import FEATURES

__all__ = [
    "Anomaly",
    "Score",
    "TopFeature",
    "decode_anomaly",
    "decode_score",
    "encode_output",
    "top_features",
]


class TopFeature(msgspec.Struct, frozen=True):
    """A feature that contributes to an anomaly: its name, raw value and share of the score."""

    name: str
    value: float
    error: float


class Anomaly(msgspec.Struct, frozen=True, kw_only=True):
    """An event whose score exceeds the model's threshold (a record of ``anomalies``).

    Attributes:
        car_id: the car.
        ts: event time, ms since the epoch.
        seq: the car's event counter.
        score: anomaly score.
        threshold: the threshold it exceeded (the model's).
        model: model name.
        model_version: model version that scored it.
        top_features: the features with the largest errors, largest first.
        failure: the ground-truth label of simulated or labelled data, if any.
        source: the input record, ``topic[partition]@offset``.
    """

    car_id: str
    ts: int
    seq: int
    score: float
    threshold: float
    model: str
    model_version: int
    top_features: list[TopFeature]
    failure: str | None = None
    source: str = ""


class Score(msgspec.Struct, frozen=True, kw_only=True):
    """Every scored event (a record of ``scores``, written with ``--all-scores``)."""

    car_id: str
    ts: int
    seq: int
    score: float
    model: str
    model_version: int
    anomaly: bool


_encoder: Final = msgspec.json.Encoder()
_anomaly_decoder: Final = msgspec.json.Decoder(Anomaly)
_score_decoder: Final = msgspec.json.Decoder(Score)


def encode_output(record: Anomaly | Score) -> bytes:
    """JSON bytes of an output record."""
    return _encoder.encode(record)


def decode_anomaly(value: bytes) -> Anomaly:
    """Decode a record of ``anomalies``."""
    return _anomaly_decoder.decode(value)


def decode_score(value: bytes) -> Score:
    """Decode a record of ``scores``."""
    return _score_decoder.decode(value)


def top_features(
    values: np.ndarray, errors: np.ndarray, k: int, names: Sequence[str] = FEATURES
) -> list[list[TopFeature]]:
    """The ``k`` largest-error features of every row, largest first (vectorized).

    Args:
        values: raw feature values ``[n, f]``.
        errors: per-feature errors ``[n, f]``.
        k: features per row (capped at ``f``).
        names: feature names, in column order.

    Example:
        >>> rows = top_features(np.array([[1.0, 2.0, 3.0]]), np.array([[0.1, 0.5, 0.2]]), 2,
        ...                     ["a", "b", "c"])
        >>> [(t.name, t.value) for t in rows[0]]
        [('b', 2.0), ('c', 3.0)]
    """
    n, f = errors.shape
    k = min(k, f)
    if n == 0 or k <= 0:
        return [[] for _ in range(n)]
    top = np.argpartition(-errors, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(errors, top, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_errors = np.take_along_axis(errors, top, axis=1).tolist()
    top_values = np.take_along_axis(values, top, axis=1).tolist()
    return [
        [TopFeature(names[c], float(v), float(e)) for c, v, e in zip(cols, vals, errs, strict=True)]
        for cols, vals, errs in zip(top.tolist(), top_values, top_errors, strict=True)
    ]
