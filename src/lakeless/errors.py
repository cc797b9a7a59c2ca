"""The exception hierarchy: one root, a few meaningful subclasses."""

from __future__ import annotations


class LakelessError(Exception):
    """Root of every error lakeless raises on purpose."""


class ConfigError(LakelessError):
    """Settings are missing, malformed or contradictory."""


class StackError(LakelessError):
    """The embedded infrastructure (Kafka, Mosquitto) cannot be started, reached or stopped."""


class KafkaError(LakelessError):
    """A Kafka operation failed (admin, produce, consume)."""


class RecordError(LakelessError):
    """A record is bad; carries what is needed to dead-letter it.

    Attributes:
        reason: machine-readable code (see `lakeless.preprocess`), e.g. ``"out_of_range"``.
        detail: human-readable explanation.
        raw: the record's bytes exactly as received.
    """

    def __init__(self, reason: str, detail: str, raw: bytes | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.raw = raw
