"""Is a registered model safe to score with? `validate` says why not.

Checked, cheapest first: the record's ``format_version``, a finite threshold, the feature list
(names and order) and schema version against what the scorer feeds, the normalization's length,
that the ONNX bytes are there (inline or at the ``file://`` URI) and hash to ``sha256``, and that
ONNX Runtime loads them and the graph honours the scoring contract of `lakeless.model.onnx`,
including one run on a two-row batch.

Example:
    >>> from lakeless.testing.models import make_test_onnx
    >>> from lakeless.registry import build_record
    >>> record = build_record("m", 1, make_test_onnx(), threshold=1.0)
    >>> validate(record)
    >>> validate(msgspec.structs.replace(record, threshold=float("nan")))
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
from lakeless.registry._record import FORMAT_VERSION, ModelRecord
from lakeless.schema import FEATURES, SCHEMA_VERSION

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


def validate(record: ModelRecord, expected_features: Sequence[str] = FEATURES) -> None:
    """Raise `ModelRejected` unless ``record`` can score the features ``expected_features``.

    Args:
        record: the model; with a URI instead of inline bytes, the file is read.
        expected_features: the columns the scorer will feed, in order.

    Raises:
        ModelRejected: with ``reason`` and a one-line ``detail`` naming what does not match.
    """
    if record.format_version != FORMAT_VERSION:
        raise ModelRejected(
            "format_version",
            f"record format_version {record.format_version} is unknown "
            f"(this lakeless reads {FORMAT_VERSION})",
        )
    if not math.isfinite(record.threshold):
        raise ModelRejected("threshold", f"threshold is {record.threshold}, not a finite number")
    _check_features(tuple(record.features), tuple(expected_features))
    if record.schema_version != SCHEMA_VERSION:
        raise ModelRejected(
            "schema_version",
            f"model was trained on schema version {record.schema_version}, "
            f"scorer reads version {SCHEMA_VERSION}",
        )
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


def _check_features(got: tuple[str, ...], expected: tuple[str, ...]) -> None:
    if got == expected:
        return
    missing = [f for f in expected if f not in got]
    extra = [f for f in got if f not in expected]
    if missing or extra:
        detail = f"missing {missing}" if missing else ""
        detail += ("; " if missing and extra else "") + (f"unexpected {extra}" if extra else "")
    else:
        at = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        detail = (
            f"same names in another order (position {at}: {got[at]!r}, expected {expected[at]!r})"
        )
    raise ModelRejected(
        "features", f"input features do not match the scorer's ({len(expected)}): {detail}"
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
