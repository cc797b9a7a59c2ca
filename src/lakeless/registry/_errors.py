"""The registry's errors: one base, `RegistryError`, under `lakeless.errors.LakelessError`."""

from __future__ import annotations

from lakeless.errors import LakelessError

__all__ = ["ModelNotFoundError", "ModelRejected", "RecordFormatError", "RegistryError"]


class RegistryError(LakelessError):
    """The model registry cannot do what was asked (topic missing, Kafka refused a record...)."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model by that name, or no such version of it, in the registry."""


class RecordFormatError(RegistryError):
    """A registry record cannot be decoded (not msgpack, unknown kind, wrong field types)."""


class ModelRejected(RegistryError):
    """A model must not score: its bytes, schema or ONNX graph do not match what it claims.

    Attributes:
        reason: machine-readable code: ``format`` (record does not decode), ``format_version``,
            ``threshold``, ``pipeline``, ``features``, ``normalization``,
            ``missing_bytes``, ``checksum`` or ``onnx``.
        detail: human-readable explanation (also the message).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
