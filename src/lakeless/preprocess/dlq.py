"""Dead-letter records: the rejected value, unchanged, plus headers that say why and whence.

A record goes to ``sensor-dlq`` with its original key, value (byte for byte) and headers; the
``lakeless.*`` headers below are appended after the original ones. Kafka headers may repeat, so
a record that is dead-lettered twice (replayed from the DLQ and rejected again) carries both
verdicts; the last one is current, which is what `read_dead_letter` returns.

Example:
    >>> from lakeless.preprocess.validate import Reason, Rejection
    >>> letter = dead_letter(
    ...     Rejection(Reason.EMPTY, "tombstone (null value)"),
    ...     value=None, key=b"car-1", topic="sensor-raw", partition=2, offset=41, timestamp=None,
    ... )
    >>> read_dead_letter(letter.headers)["lakeless.reason"]
    'empty'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lakeless.preprocess.validate import Rejection

__all__ = [
    "HEADER_DETAIL",
    "HEADER_FIELD",
    "HEADER_REASON",
    "HEADER_SOURCE_OFFSET",
    "HEADER_SOURCE_PARTITION",
    "HEADER_SOURCE_TIMESTAMP",
    "HEADER_SOURCE_TOPIC",
    "DeadLetter",
    "Headers",
    "dead_letter",
    "dead_letter_headers",
    "read_dead_letter",
]

HEADER_REASON: Final = "lakeless.reason"
HEADER_DETAIL: Final = "lakeless.detail"
HEADER_FIELD: Final = "lakeless.field"
HEADER_SOURCE_TOPIC: Final = "lakeless.source.topic"
HEADER_SOURCE_PARTITION: Final = "lakeless.source.partition"
HEADER_SOURCE_OFFSET: Final = "lakeless.source.offset"
HEADER_SOURCE_TIMESTAMP: Final = "lakeless.source.timestamp"
#: Longest ``lakeless.detail`` header, in characters.
MAX_DETAIL_LEN: Final = 1000

#: Kafka record headers as confluent-kafka returns them.
Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class DeadLetter:
    """A record ready to produce to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def dead_letter_headers(
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int | None,
) -> Headers:
    """The ``lakeless.*`` headers for a rejected record; all values are UTF-8 text as bytes.

    Args:
        rejection: why the record was rejected.
        topic: the topic the record was read from.
        partition: its partition.
        offset: its offset.
        timestamp: its Kafka timestamp in ms; ``None`` or negative (not available) leaves the
            ``lakeless.source.timestamp`` header out.

    Returns:
        ``lakeless.reason``, ``lakeless.detail``, ``lakeless.field`` (only when a field is
        known) and the ``lakeless.source.*`` headers.
    """
    detail = rejection.detail
    if len(detail) > MAX_DETAIL_LEN:
        detail = detail[: MAX_DETAIL_LEN - 3] + "..."
    headers: Headers = [
        (HEADER_REASON, rejection.reason.value.encode()),
        (HEADER_DETAIL, detail.encode("utf-8", "backslashreplace")),
    ]
    if rejection.field is not None:
        headers.append((HEADER_FIELD, rejection.field.encode()))
    headers += [
        (HEADER_SOURCE_TOPIC, topic.encode()),
        (HEADER_SOURCE_PARTITION, str(partition).encode()),
        (HEADER_SOURCE_OFFSET, str(offset).encode()),
    ]
    if timestamp is not None and timestamp >= 0:
        headers.append((HEADER_SOURCE_TIMESTAMP, str(timestamp).encode()))
    return headers


def dead_letter(
    rejection: Rejection,
    *,
    value: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int | None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> DeadLetter:
    """The dead-letter record for a rejected one: same key and value, headers appended.

    Args:
        rejection: why the record was rejected.
        value: the record value exactly as consumed (forwarded unchanged).
        key: the record key (kept, so the DLQ is partitioned by car like the source).
        topic: the source topic.
        partition: the source partition.
        offset: the source offset.
        timestamp: the source timestamp in ms, if available.
        headers: the source record's headers, kept in order.
    """
    extra = dead_letter_headers(
        rejection, topic=topic, partition=partition, offset=offset, timestamp=timestamp
    )
    return DeadLetter(key=key, value=value, headers=[*(headers or ()), *extra])


def read_dead_letter(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The ``lakeless.*`` headers of a record, decoded; the last of a repeated name wins."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        if name.startswith("lakeless.") and value is not None:
            out[name] = value.decode("utf-8", "replace")
    return out
