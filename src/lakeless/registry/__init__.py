"""The model registry on Kafka: every model version is one record on ``lakeless.models``.

A registered model (`ModelRecord`) carries its name, version, ONNX bytes (or a ``file://`` URI
when too large), sha256, feature list and normalization, threshold, metrics, lineage (the
resolved offsets it was trained on), framework versions, hyperparameters, creation time and
stage. Promotions are `StageChange` records appended to the same log; the registry's state is
the fold of the log (`RegistryState`): no compaction, no external database.

- `Registry`: register, list, get, promote, export (``lakeless models ...`` on the command line);
- `RegistryFollower`: for scorers and servers, swaps to a newly promoted model between batches
  and refuses a bad one (`validate`) while the current model keeps scoring.

Example:
    >>> from lakeless.registry import build_record, decode_entry, encode_entry, validate
    >>> from lakeless.testing.models import FEATURES, make_test_onnx
    >>> record = build_record("car-ae", 1, make_test_onnx(), threshold=2.5, features=FEATURES)
    >>> validate(record, FEATURES)  # checksum, features, ONNX contract
    >>> decode_entry(encode_entry(record)) == record
    True
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.registry._settings import DEFAULT_MAX_INLINE_BYTES, RegistrySettings

if TYPE_CHECKING:
    from lakeless.registry._errors import (
        ModelNotFoundError,
        ModelRejected,
        RecordFormatError,
        RegistryError,
    )
    from lakeless.registry._follower import RegistryFollower
    from lakeless.registry._log import MAX_RECORD_BYTES
    from lakeless.registry._record import (
        FORMAT_VERSION,
        ModelRecord,
        ModelSummary,
        Stage,
        StageChange,
        build_record,
        decode_entry,
        decode_summary,
        encode_entry,
    )
    from lakeless.registry._registry import Registry
    from lakeless.registry._state import RegistryState, VersionRef
    from lakeless.registry._validate import model_bytes, validate

__all__ = [
    "DEFAULT_MAX_INLINE_BYTES",
    "FORMAT_VERSION",
    "MAX_RECORD_BYTES",
    "ModelNotFoundError",
    "ModelRecord",
    "ModelRejected",
    "ModelSummary",
    "RecordFormatError",
    "Registry",
    "RegistryError",
    "RegistryFollower",
    "RegistrySettings",
    "RegistryState",
    "Stage",
    "StageChange",
    "VersionRef",
    "build_record",
    "decode_entry",
    "decode_summary",
    "encode_entry",
    "model_bytes",
    "validate",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "._errors": ["ModelNotFoundError", "ModelRejected", "RecordFormatError", "RegistryError"],
        "._follower": ["RegistryFollower"],
        "._log": ["MAX_RECORD_BYTES"],
        "._record": [
            "FORMAT_VERSION",
            "ModelRecord",
            "ModelSummary",
            "Stage",
            "StageChange",
            "build_record",
            "decode_entry",
            "decode_summary",
            "encode_entry",
        ],
        "._registry": ["Registry"],
        "._state": ["RegistryState", "VersionRef"],
        "._validate": ["model_bytes", "validate"],
    },
)
