"""The JSON events devices send, as a msgspec type generated from a `PipelineSchema`.

`event_type` builds one ``msgspec.Struct`` class per schema: every field with its Python type
and constraints (numeric ranges, string lengths, the key's pattern, enum symbols), defaults for
optional fields, unknown fields forbidden. Decoding JSON into it validates in one pass, in C;
`lakeless.preprocess.Validator` adds what msgspec cannot check and explains failures.

Example:
    >>> from lakeless.examples import car_fleet
    >>> schema = car_fleet()
    >>> codec = EventCodec(schema)
    >>> event = codec.decode(codec.encode(schema.example(seq=3)))
    >>> event.car_id, event.seq, event.failure
    ('car-1', 3, None)
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from lakeless.schema._model import FieldSpec, PipelineSchema

__all__ = ["EventCodec", "event_type"]

_INT64: tuple[int, int] = (-(2**63), 2**63 - 1)


def _annotation(schema: PipelineSchema, spec: FieldSpec) -> Any:
    if spec.type == "boolean":
        base: Any = bool
    elif spec.numeric:
        low, high = spec.min, spec.max
        if spec.name in (schema.time, schema.sequence):
            low = 0 if low is None else max(0, low)
            high = _INT64[1] if high is None else high
        meta: dict[str, Any] = {}
        if low is not None:
            meta["ge"] = int(low) if spec.integer and float(low).is_integer() else low
        if high is not None:
            meta["le"] = int(high) if spec.integer and float(high).is_integer() else high
        if spec.unit:
            meta["extra"] = {"unit": spec.unit}
        base = Annotated[int if spec.integer else float, Meta(**meta)]
    elif spec.type == "enum":
        assert spec.symbols is not None  # enums always have symbols
        base = Literal[spec.symbols]
    else:
        # max_length counts characters here; the UTF-8 byte limit is checked by the validator.
        pattern = f"^(?:{spec.pattern})\\Z" if spec.pattern is not None else None
        base = Annotated[
            str, Meta(min_length=spec.min_length, max_length=spec.max_length, pattern=pattern)
        ]
    return base | None if spec.nullable else base


@functools.cache
def _event_type(schema: PipelineSchema) -> type[msgspec.Struct]:
    required: list[tuple[str, Any]] = []
    optional: list[tuple[str, Any, Any]] = []
    for spec in schema.fields:
        annotation = _annotation(schema, spec)
        if spec.has_default:
            optional.append((spec.name, annotation, spec.default))
        else:
            required.append((spec.name, annotation))
    # msgspec needs fields with defaults last; `EventCodec` maps back to schema order.
    fields: list[Any] = [*required, *optional]
    return msgspec.defstruct(
        schema.name.rsplit(".", 1)[-1],
        fields,
        forbid_unknown_fields=True,
        omit_defaults=False,
        module="lakeless.schema.events",
    )


def event_type(schema: PipelineSchema) -> type[msgspec.Struct]:
    """The event class of ``schema`` (one class per schema, cached)."""
    return _event_type(schema)


class EventCodec:
    """JSON events of one schema: decode (validating), encode, field access by name.

    Attributes:
        schema: the pipeline schema.
        type: the generated event class.
        order: for each schema field, its position in the event's `msgspec.structs.astuple`.
    """

    def __init__(self, schema: PipelineSchema) -> None:
        self.schema = schema
        self.type = event_type(schema)
        positions = {name: i for i, name in enumerate(self.type.__struct_fields__)}
        self.order = tuple(positions[name] for name in schema.field_names)
        self._decoder = msgspec.json.Decoder(self.type)
        self._encoder = msgspec.json.Encoder()

    def decode(self, raw: bytes | str) -> Any:
        """Decode and validate one JSON event.

        Raises:
            msgspec.ValidationError: a field is missing, unknown, of the wrong type or range.
            msgspec.DecodeError: the bytes are not JSON.
        """
        return self._decoder.decode(raw)

    def encode(self, event: Any) -> bytes:
        """Compact JSON of an event object or dict (the raw topic's format)."""
        return self._encoder.encode(event)

    def from_dict(self, values: dict[str, Any]) -> Any:
        """An event object from a dict of field values (validated: JSON round trip)."""
        return self.decode(self._encoder.encode(values))

    def to_dict(self, event: Any) -> dict[str, Any]:
        """The event as a dict in schema order."""
        return {name: getattr(event, name) for name in self.schema.field_names}
