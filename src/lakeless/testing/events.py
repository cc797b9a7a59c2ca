"""Events of any pipeline schema for tests (the car fleet's by default): JSON, objects, clean bytes.

Example:
    >>> raw = example_json(car_id="car-7", seq=3)
    >>> event = decode_event(raw)
    >>> event.car_id, event.seq, event.failure
    ('car-7', 3, None)
    >>> decode_clean([encode_clean(event)]).key
    ['car-7']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lakeless.examples import car_fleet
from lakeless.schema import CleanBatch, CleanCodec, Decoder, EventCodec, PipelineSchema

__all__ = [
    "decode_clean",
    "decode_event",
    "encode_clean",
    "encode_event",
    "example_event",
    "example_json",
    "example_values",
]


def _schema(schema: PipelineSchema | None) -> PipelineSchema:
    return schema if schema is not None else car_fleet()


def example_values(schema: PipelineSchema | None = None, **fields: Any) -> dict[str, Any]:
    """A valid, typical event as a dict (time 1_700_000_000_000 unless given)."""
    return _schema(schema).example(**fields)


def example_json(schema: PipelineSchema | None = None, **fields: Any) -> bytes:
    """A valid, typical event as compact JSON (what devices send)."""
    return EventCodec(_schema(schema)).encode(example_values(schema, **fields))


def example_event(schema: PipelineSchema | None = None, **fields: Any) -> Any:
    """A valid, typical event object (of the schema's generated event type)."""
    return decode_event(example_json(schema, **fields), schema)


def decode_event(raw: bytes | str, schema: PipelineSchema | None = None) -> Any:
    """Decode and validate one JSON event (``msgspec`` errors when invalid)."""
    return EventCodec(_schema(schema)).decode(raw)


def encode_event(event: Any, schema: PipelineSchema | None = None) -> bytes:
    """An event object or dict as compact JSON."""
    return EventCodec(_schema(schema)).encode(event)


def encode_clean(event: Any, schema: PipelineSchema | None = None) -> bytes:
    """An event object (or dict) as a clean record."""
    schema = _schema(schema)
    if isinstance(event, dict):
        event = EventCodec(schema).from_dict(event)
    return CleanCodec(schema).encode(event)


def decode_clean(values: Sequence[bytes], schema: PipelineSchema | None = None) -> CleanBatch:
    """Clean records of the schema as one batch."""
    return Decoder(_schema(schema)).decode(list(values))
