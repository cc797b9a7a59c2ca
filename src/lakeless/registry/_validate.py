"""Is a registered model safe to score with? `validate` says why not.

Checked, cheapest first: the record's ``format_version``, a finite threshold, the pipeline, the
feature list (every input must be a feature of the pipeline's current schema, so a model keeps
scoring after a field is added), the normalization's length, that the ONNX bytes are there
(inline or at the ``file://`` URI) and hash to ``sha256``, and that ONNX Runtime loads them and
the graph honours the scoring contract of `lakeless.model.onnx`, including one run on a
two-row batch.

Example:
    >>> from lakeless.testing.models import FEATURES, make_test_onnx
    >>> from lakeless.registry import build_record
    >>> record = build_record("m", 1, make_test_onnx(), threshold=1.0, features=FEATURES)
    >>> validate(record, FEATURES)
    >>> validate(msgspec.structs.replace(record, threshold=float("nan")), FEATURES)
    Traceback (most recent call last):
    ...
    lakeless.registry._errors.ModelRejected: threshold is nan, not a finite number
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import msgspec
import numpy as np

from lakeless.registry._errors import ModelRejected
from lakeless.registry._record import FORMAT_VERSION, READABLE_FORMATS, ModelRecord

__all__ = ["check_checksum", "model_bytes", "resolve_bytes", "validate"]


def model_bytes(record: ModelRecord) -> bytes:
    """The ONNX bytes of ``record``: inline, or read from its ``file://`` URI.

    Raises:
        ModelRejected: (``missing_bytes``) neither inline bytes nor a readable URI.
    """
    if record.onnx is not None:
        return record.onnx
    if record.uri is None:
        raise ModelRejected("missing_bytes", "record has neither ONNX bytes nor a uri")
    parts = urlsplit(record.uri)
    if parts.scheme != "file":
        raise ModelRejected("missing_bytes", f"unsupported model uri {record.uri!r} (file:// only)")
    try:
        return Path(unquote(parts.path)).read_bytes()
    except OSError as exc:
        raise ModelRejected("missing_bytes", f"cannot read {record.uri}: {exc}") from exc


def resolve_bytes(record: ModelRecord) -> ModelRecord:
    """``record`` with its ONNX bytes inline (read from the URI when needed; `model_bytes`)."""
    if record.onnx is not None:
        return record
    return msgspec.structs.replace(record, onnx=model_bytes(record))


def validate(record: ModelRecord, features: Sequence[str], pipeline: str | None = None) -> None:
    """Raise `ModelRejected` unless ``record`` can score a pipeline with ``features``.

    Args:
        record: the model; with a URI instead of inline bytes, the file is read.
        features: the features of the pipeline's current schema; the model's inputs must be
            among them (a model trained before a field was added keeps scoring).
        pipeline: the pipeline the scorer reads; ``None``: not checked.

    Raises:
        ModelRejected: with ``reason`` and a one-line ``detail`` naming what does not match.
    """
    if record.format_version not in READABLE_FORMATS:
        raise ModelRejected(
            "format_version",
            f"record format_version {record.format_version} is unknown "
            f"(this lakeless reads {sorted(READABLE_FORMATS)}, writes {FORMAT_VERSION})",
        )
    if not math.isfinite(record.threshold):
        raise ModelRejected("threshold", f"threshold is {record.threshold}, not a finite number")
    if pipeline is not None and record.pipeline != pipeline:
        raise ModelRejected(
            "pipeline",
            f"model was trained on pipeline {record.pipeline!r}, scorer reads {pipeline!r}",
        )
    _check_features(tuple(record.features), tuple(features))
    n_features = len(record.features)
    for key, values in (record.normalization or {}).items():
        if len(values) != n_features:
            raise ModelRejected(
                "normalization",
                f"normalization {key!r} has {len(values)} values for {n_features} features",
            )
    data = model_bytes(record)
    check_checksum(record, data)
    _check_onnx(data, n_features)


def check_checksum(record: ModelRecord, data: bytes) -> None:
    """Raise `ModelRejected` (``checksum``) unless ``data`` are the bytes ``record`` describes."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256 or len(data) != record.size:
        raise ModelRejected(
            "checksum",
            f"ONNX bytes have sha256 {digest[:16]}... ({len(data)} bytes), record says "
            f"{record.sha256[:16]}... ({record.size} bytes)",
        )


def _check_features(got: tuple[str, ...], available: tuple[str, ...]) -> None:
    if not got:
        raise ModelRejected("features", "model has no input features")
    repeated = sorted({f for f in got if got.count(f) > 1})
    if repeated:
        raise ModelRejected("features", f"input features repeat {repeated}")
    missing = [f for f in got if f not in available]
    if missing:
        raise ModelRejected(
            "features",
            f"model inputs {missing} are not features of the pipeline's schema "
            f"({len(available)} features: {', '.join(available[:6])}"
            f"{', ...' if len(available) > 6 else ''})",
        )


def _check_onnx(data: bytes, n_features: int) -> None:
    # Imported here: ONNX Runtime is the slowest import of the registry and only checks need it.
    from lakeless.model.onnx import ModelLoadError, OnnxScorer

    try:
        scorer = OnnxScorer(data, n_features)
    except ModelLoadError as exc:
        raise ModelRejected("onnx", str(exc)) from exc
    try:
        score, errors = scorer.score(np.zeros((2, n_features), np.float32))
    except Exception as exc:  # onnxruntime raises its own untyped exception classes
        raise ModelRejected("onnx", f"model fails on a test batch: {exc}") from exc
    if score.shape != (2,) or errors.shape != (2, n_features):
        raise ModelRejected(
            "onnx",
            f"a batch of 2 gives score shape {score.shape} and feature_errors shape "
            f"{errors.shape}; expected (2,) and (2, {n_features})",
        )
