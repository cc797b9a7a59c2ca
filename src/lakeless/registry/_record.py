"""The records of ``lakeless.models``: a registered model, and a stage change.

Every record value is one msgpack map (so the ONNX bytes travel raw, not base64) whose ``kind``
field says what it is:

- ``"model"``: `ModelRecord`, one registered model version with everything needed to score and
  to audit it;
- ``"stage"``: `StageChange`, appended by ``promote``; the log is never rewritten.

Record key: the model name (UTF-8). Headers: ``lakeless.kind`` (``model`` / ``stage``),
``lakeless.name``, ``lakeless.version`` (decimal), so tools can filter without decoding.

Compatibility: fields are encoded by name and unknown fields are ignored when decoding, so a newer
writer may add fields. A writer that changes the meaning of a field bumps ``format_version``;
readers refuse a model whose ``format_version`` they do not know (`lakeless.registry.validate`).

Example:
    >>> change = StageChange(name="car-ae", version=3, stage="live", at=1_700_000_000_000)
    >>> decode_entry(encode_entry(change)) == change
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import re
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, Final, Literal, Required, TypedDict, TypeVar

import msgspec

from lakeless.registry._errors import RecordFormatError

__all__ = [
    "FORMAT_VERSION",
    "NAME_PATTERN",
    "ModelRecord",
    "ModelSummary",
    "RecordFields",
    "Stage",
    "StageChange",
    "build_record",
    "check_name",
    "decode_entry",
    "decode_summary",
    "encode_entry",
    "headers_for",
]

#: Version of the record layout this code writes. 2 added ``pipeline`` and
#: ``schema_fingerprint`` (replacing ``schema_version``).
FORMAT_VERSION: Final = 2
#: Versions this code reads (1: the car fleet's models before pipelines were declared).
READABLE_FORMATS: Final = frozenset({1, 2})
#: The pipeline a format-1 record belongs to.
LEGACY_PIPELINE: Final = "car-fleet"
#: Allowed model names: one CLI token that can be followed by ``:VERSION``.
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"
_NAME_RE: Final = re.compile(NAME_PATTERN)

#: ``candidate``: registered, not scoring; ``live``: what scorers use; ``archived``: was live.
Stage = Literal["candidate", "live", "archived"]


class ModelSummary(msgspec.Struct, kw_only=True, frozen=True, tag_field="kind", tag="model"):
    """Everything about a registered model except its ONNX bytes (what ``list`` returns).

    Attributes:
        format_version: layout version of the record (`FORMAT_VERSION` when written here).
        name: model name; the record key.
        version: 1, 2, ... per name, assigned by the registry.
        stage: in a record on the topic, the stage it was registered with; in what the
            registry returns, the current stage (the fold of the log).
        created_at: registration time, ms since the epoch.
        sha256: hex digest of the ONNX bytes.
        size: length of the ONNX bytes.
        uri: where the ONNX bytes are when too large to travel in the record (``file://...``);
            ``None`` when they are inline.
        features: model input columns, in order (features of the pipeline's schema).
        pipeline: the pipeline whose data the model was trained on.
        schema_fingerprint: the fingerprint of that pipeline's schema version (hex).
        schema_version: format 1 only: the car fleet's schema version.
        normalization: e.g. ``{"mean": [...], "variance": [...]}`` per feature, for audit only:
            the ONNX model normalizes by itself. ``None`` when the model has none.
        threshold: score above which an event is an anomaly.
        metrics: evaluation results (free-form JSON-like values).
        lineage: what the model was trained on: topic, per-partition offset ranges
            ``[start, end)``, time range, resolved-at (JSON-like, written by the dataset reader).
        frameworks: library versions that made the model (``{"tensorflow": "2.18.0", ...}``).
        params: hyperparameters.
        report: training report (JSON-like), if any.
        description: free text.
    """

    format_version: int = FORMAT_VERSION
    name: str
    version: int
    stage: Stage = "candidate"
    created_at: int
    sha256: str
    size: int
    uri: str | None = None
    features: tuple[str, ...]
    pipeline: str = LEGACY_PIPELINE
    schema_fingerprint: str = ""
    schema_version: int | None = None
    normalization: dict[str, list[float]] | None = None
    threshold: float
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    lineage: dict[str, Any] = msgspec.field(default_factory=dict)
    frameworks: dict[str, str] = msgspec.field(default_factory=dict)
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    report: dict[str, Any] | None = None
    description: str = ""

    @property
    def ref(self) -> str:
        """``name:version``, the form the CLI takes."""
        return f"{self.name}:{self.version}"


class ModelRecord(ModelSummary, kw_only=True, frozen=True, tag="model"):
    """A registered model: its `ModelSummary` plus the ONNX bytes.

    Attributes:
        onnx: the serialized ONNX model; ``None`` when it lives at `uri`.
    """

    onnx: bytes | None = None

    def summary(self) -> ModelSummary:
        """The same record without the ONNX bytes."""
        fields = msgspec.structs.asdict(self)
        del fields["onnx"]
        return ModelSummary(**fields)


class StageChange(msgspec.Struct, kw_only=True, frozen=True, tag_field="kind", tag="stage"):
    """Model ``name`` version ``version`` moved to ``stage`` at ``at`` (ms since the epoch).

    Promoting a version to ``live`` implicitly archives the version that was live before.
    """

    format_version: int = FORMAT_VERSION
    name: str
    version: int
    stage: Stage
    at: int


Entry = ModelRecord | StageChange

_T = TypeVar("_T")

_encoder: Final = msgspec.msgpack.Encoder()
_full_decoder: Final[msgspec.msgpack.Decoder[ModelRecord | StageChange]] = msgspec.msgpack.Decoder(
    ModelRecord | StageChange
)
# Decoding into the summary type skips the ONNX bytes: folding a log of big models stays cheap.
_summary_decoder: Final[msgspec.msgpack.Decoder[ModelSummary | StageChange]] = (
    msgspec.msgpack.Decoder(ModelSummary | StageChange)
)


def encode_entry(entry: ModelRecord | StageChange) -> bytes:
    """The record value for ``entry``."""
    return _encoder.encode(entry)


def decode_entry(value: bytes | None) -> ModelRecord | StageChange:
    """Decode a record value, ONNX bytes included.

    Raises:
        RecordFormatError: the value is not a registry record this code can read.
    """
    return _decode(_full_decoder, value)


def decode_summary(value: bytes | None) -> ModelSummary | StageChange:
    """Decode a record value without copying the ONNX bytes.

    Raises:
        RecordFormatError: the value is not a registry record this code can read.
    """
    return _decode(_summary_decoder, value)


def _decode(decoder: msgspec.msgpack.Decoder[_T], value: bytes | None) -> _T:
    try:
        return decoder.decode(value or b"")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordFormatError(f"not a registry record: {exc}") from exc


def headers_for(entry: ModelSummary | StageChange) -> list[tuple[str, bytes]]:
    """The ``lakeless.*`` headers of the record for ``entry``."""
    kind = "stage" if isinstance(entry, StageChange) else "model"
    return [
        ("lakeless.kind", kind.encode()),
        ("lakeless.name", entry.name.encode()),
        ("lakeless.version", str(entry.version).encode()),
    ]


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name.

    Raises:
        ValueError: it is not (see `NAME_PATTERN`).
    """
    if not _NAME_RE.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_', '.', '-' (at most 128, "
            "starting with a letter or digit)"
        )
    return name


def default_frameworks() -> dict[str, str]:
    """Versions of Python and of the installed libraries a model record names by default."""
    versions = {"python": platform.python_version()}
    for package in ("lakeless", "onnxruntime", "onnx", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


class RecordFields(TypedDict, total=False):
    """The metadata `build_record` takes by keyword (stage and storage aside), for forwarding.

    mypy checks every forwarding call against `build_record`'s signature, where the defaults and
    the meaning of each field are.
    """

    threshold: Required[float]
    features: Required[Sequence[str]]
    pipeline: str
    schema_fingerprint: str
    normalization: Mapping[str, Sequence[float]] | None
    metrics: Mapping[str, Any] | None
    lineage: Mapping[str, Any] | None
    frameworks: Mapping[str, str] | None
    params: Mapping[str, Any] | None
    report: Mapping[str, Any] | None
    description: str


def build_record(
    name: str,
    version: int,
    onnx_bytes: bytes,
    *,
    threshold: float,
    features: Sequence[str],
    pipeline: str = LEGACY_PIPELINE,
    schema_fingerprint: str = "",
    normalization: Mapping[str, Sequence[float]] | None = None,
    metrics: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    frameworks: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    report: Mapping[str, Any] | None = None,
    description: str = "",
    stage: Stage = "candidate",
    created_at: int | None = None,
    uri: str | None = None,
) -> ModelRecord:
    """A `ModelRecord` for ``onnx_bytes``: sha256, size and time filled in.

    Args:
        name: model name (`NAME_PATTERN`).
        version: version number (>= 1).
        onnx_bytes: the serialized model.
        threshold: anomaly threshold on the score.
        features: model inputs in order (features of the pipeline's schema).
        pipeline: the pipeline the model was trained on.
        schema_fingerprint: that pipeline's schema fingerprint (hex).
        normalization: per-feature statistics (e.g. ``mean`` / ``variance`` lists).
        metrics: evaluation results.
        lineage: training data (from the dataset reader).
        frameworks: library versions, added to `default_frameworks`.
        params: hyperparameters.
        report: training report.
        description: free text.
        stage: ``candidate`` or ``live``.
        created_at: ms since the epoch (now by default).
        uri: where the bytes are stored instead of inline; the record then carries no bytes.

    Raises:
        ValueError: invalid name or version.

    Example:
        >>> record = build_record("car-ae", 1, b"onnx", threshold=0.5, features=["a", "b"])
        >>> record.ref, record.size, record.sha256[:8], record.features, record.pipeline
        ('car-ae:1', 4, '87e93f89', ('a', 'b'), 'car-fleet')
    """
    check_name(name)
    if version < 1:
        raise ValueError(f"model version must be >= 1, got {version}")
    return ModelRecord(
        name=name,
        version=version,
        stage=stage,
        created_at=int(time.time() * 1000) if created_at is None else created_at,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        size=len(onnx_bytes),
        uri=uri,
        features=tuple(features),
        pipeline=pipeline,
        schema_fingerprint=schema_fingerprint,
        normalization=(
            {key: [float(v) for v in values] for key, values in normalization.items()}
            if normalization is not None
            else None
        ),
        threshold=float(threshold),
        metrics=dict(metrics or {}),
        lineage=dict(lineage or {}),
        frameworks={**default_frameworks(), **(frameworks or {})},
        params=dict(params or {}),
        report=dict(report) if report is not None else None,
        description=description,
        onnx=None if uri is not None else onnx_bytes,
    )
