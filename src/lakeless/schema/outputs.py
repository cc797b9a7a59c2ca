"""What the scorer writes: anomaly records to ``NAME.anomalies``, score records to ``NAME.scores``.

Both are JSON objects (``docs/data-contract.md`` §4) whose entity, time, sequence and label
fields carry the pipeline schema's own names (``car_id``, ``ts``, ``seq``, ``failure`` for the
car fleet). In Python every record has the same attribute names whatever the schema (``key``,
``time``, ``sequence``, ``label``, ...): `OutputCodec` generates one msgspec class per schema
that renames them on the wire, so encoding stays a single C call per record.

Example:
    >>> from lakeless.examples import car_fleet
    >>> codec = OutputCodec(car_fleet())
    >>> anomaly = codec.anomaly(
    ...     key="car-1", time=5, sequence=7, score=3.5, threshold=2.0, model="car-ae",
    ...     model_version=2, top_features=[TopFeature("coolant_temp", 140.0, 3.1)],
    ...     label="overheating", source="sensor-clean[0]@42",
    ... )
    >>> codec.encode(anomaly)[:40]
    b'{"car_id":"car-1","ts":5,"seq":7,"score"'
    >>> codec.decode_anomaly(codec.encode(anomaly)) == anomaly
    True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import numpy as np

from lakeless.schema._model import PipelineSchema

__all__ = ["AnomalyRecord", "OutputCodec", "ScoreRecord", "TopFeature", "top_features"]


class TopFeature(msgspec.Struct, frozen=True):
    """A feature that contributes to an anomaly: its name, raw value and share of the score."""

    name: str
    value: float
    error: float


class AnomalyRecord(Protocol):
    """An event whose score exceeds the model's threshold (a record of ``NAME.anomalies``).

    Attributes:
        key: the entity id.
        time: event time, ms since the epoch.
        sequence: the entity's counter (``None`` when the schema has none).
        score: anomaly score; ``None`` (JSON ``null``) when it is not finite (such scores are
            anomalies too: JSON has no infinity).
        threshold: the model's threshold.
        model: model name.
        model_version: model version that scored it.
        top_features: the features with the largest errors, largest first.
        label: the ground-truth label, if the schema has one.
        source: the input record, ``topic[partition]@offset``.
    """

    key: str
    time: int
    score: float | None
    threshold: float
    model: str
    model_version: int
    top_features: list[TopFeature]
    source: str

    @property
    def sequence(self) -> int | None: ...  # noqa: D102

    @property
    def label(self) -> str | None: ...  # noqa: D102


class ScoreRecord(Protocol):
    """Every scored event (a record of ``NAME.scores``, written with ``--all-scores``)."""

    key: str
    time: int
    score: float | None
    threshold: float
    anomaly: bool
    model: str
    model_version: int

    @property
    def sequence(self) -> int | None: ...  # noqa: D102


def _none(_self: Any) -> None:
    return None


@functools.cache
def _types(schema: PipelineSchema) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    rename = {"key": schema.key, "time": schema.time}
    namespace: dict[str, Any] = {}
    head: list[Any] = [("key", str), ("time", int)]
    if schema.sequence is not None:
        head.append(("sequence", int))
        rename["sequence"] = schema.sequence
    else:
        namespace["sequence"] = property(_none)
    label: list[Any] = []
    anomaly_namespace = dict(namespace)
    if schema.label is not None:
        label.append(("label", str | None, None))
        rename["label"] = schema.label
    else:
        anomaly_namespace["label"] = property(_none)
    anomaly = msgspec.defstruct(
        "Anomaly",
        [
            *head,
            ("score", float | None),
            ("threshold", float),
            ("model", str),
            ("model_version", int),
            ("top_features", list[TopFeature]),
            *label,
            ("source", str, ""),
        ],
        rename=rename,
        namespace=anomaly_namespace,
        frozen=True,
        kw_only=True,
        module="lakeless.schema.outputs",
    )
    score = msgspec.defstruct(
        "Score",
        [
            *head,
            ("score", float | None),
            ("threshold", float),
            ("anomaly", bool),
            ("model", str),
            ("model_version", int),
        ],
        rename=rename,
        namespace=namespace,
        frozen=True,
        kw_only=True,
        module="lakeless.schema.outputs",
    )
    return anomaly, score


class OutputCodec:
    """Output records of one pipeline schema: build, encode, decode.

    Attributes:
        schema: the pipeline schema.
        anomaly_type: the generated anomaly class.
        score_type: the generated score class.
    """

    def __init__(self, schema: PipelineSchema) -> None:
        self.schema = schema
        self.anomaly_type, self.score_type = _types(schema)
        self._encoder = msgspec.json.Encoder()
        self._anomaly_decoder = msgspec.json.Decoder(self.anomaly_type)
        self._score_decoder = msgspec.json.Decoder(self.score_type)

    def anomaly(self, **fields: Any) -> AnomalyRecord:
        """An anomaly record; ``sequence`` and ``label`` are dropped when the schema lacks them."""
        if self.schema.sequence is None:
            fields.pop("sequence", None)
        if self.schema.label is None:
            fields.pop("label", None)
        record: AnomalyRecord = self.anomaly_type(**fields)  # type: ignore[assignment]
        return record

    def score(self, **fields: Any) -> ScoreRecord:
        """A score record; ``sequence`` is dropped when the schema has none."""
        if self.schema.sequence is None:
            fields.pop("sequence", None)
        record: ScoreRecord = self.score_type(**fields)  # type: ignore[assignment]
        return record

    def encode(self, record: AnomalyRecord | ScoreRecord) -> bytes:
        """JSON bytes of an output record."""
        return self._encoder.encode(record)

    def decode_anomaly(self, value: bytes) -> AnomalyRecord:
        """Decode a record of ``NAME.anomalies``.

        Raises:
            msgspec.DecodeError: not JSON.
            msgspec.ValidationError: not an anomaly record of this schema.
        """
        record: AnomalyRecord = self._anomaly_decoder.decode(value)  # type: ignore[assignment]
        return record

    def decode_score(self, value: bytes) -> ScoreRecord:
        """Decode a record of ``NAME.scores`` (errors as `decode_anomaly`)."""
        record: ScoreRecord = self._score_decoder.decode(value)  # type: ignore[assignment]
        return record


def top_features(
    values: np.ndarray, errors: np.ndarray, k: int, names: Sequence[str]
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
    safe = np.where(np.isfinite(errors), errors, np.inf)
    top = np.argpartition(-safe, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(safe, top, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_errors = np.take_along_axis(errors, top, axis=1).tolist()
    top_values = np.take_along_axis(values, top, axis=1).tolist()
    return [
        [TopFeature(names[c], float(v), float(e)) for c, v, e in zip(cols, vals, errs, strict=True)]
        for cols, vals, errs in zip(top.tolist(), top_values, top_errors, strict=True)
    ]
