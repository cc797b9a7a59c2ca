"""A pipeline's schema: an Avro record schema with lakeless' roles, units and ranges.

`load_schema` reads an ``.avsc`` file (or its parsed JSON) into a `PipelineSchema`. fastavro
parses and checks it as Avro; this module then checks what lakeless needs on top: a flat
record, the roles named in the record's ``lakeless`` attribute, numeric ranges. Every problem
is a `SchemaError` that names the field. The format is specified in ``docs/data-contract.md``.

Example:
    >>> schema = load_schema({
    ...     "type": "record", "name": "Pump",
    ...     "lakeless": {"key": "pump_id", "time": "t", "label": "fault"},
    ...     "fields": [
    ...         {"name": "pump_id", "type": "string"},
    ...         {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ...         {"name": "flow", "type": "double", "unit": "m3/h", "min": 0, "max": 500},
    ...         {"name": "fault", "type": ["null", "string"], "default": None},
    ...     ],
    ... })
    >>> schema.feature_names, schema.key, schema.sequence, schema.label
    (('flow',), 'pump_id', None, 'fault')
    >>> len(schema.fingerprint_hex)
    16
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import fastavro.schema

from lakeless.errors import LakelessError

__all__ = [
    "DEFAULT_KEY_PATTERN",
    "DEFAULT_MAX_LENGTH",
    "FieldSpec",
    "PipelineSchema",
    "SchemaError",
    "load_schema",
]

#: Longest string value by default, in UTF-8 bytes.
DEFAULT_MAX_LENGTH: Final = 64
#: Longest string value the clean layout can hold (its uint16 length; 0xFFFF means null).
MAX_STRING_BYTES: Final = 0xFFFE
#: A key must be usable as one MQTT topic level (no ``/``, ``+``, ``#``) unless told otherwise.
DEFAULT_KEY_PATTERN: Final = "[A-Za-z0-9_.:-]+"

_INTEGER: Final = frozenset({"int", "long"})
_NUMERIC: Final = frozenset({"int", "long", "float", "double", "boolean"})
_STRING: Final = frozenset({"string", "enum"})
_INT_RANGE: Final = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
#: float32's largest finite value: a ``float`` field cannot hold more.
_FLOAT_MAX: Final = 3.4028234663852886e38
_ROLE_KEYS: Final = frozenset({"key", "time", "sequence", "label", "context"})
_AVRO_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class SchemaError(LakelessError):
    """A schema file is not a valid lakeless pipeline schema; the message names the field."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a pipeline schema.

    Attributes:
        name: the field name (also the JSON key devices send).
        type: ``int``, ``long``, ``float``, ``double``, ``boolean``, ``string`` or ``enum``.
        nullable: the Avro type is a union with ``null``.
        has_default: the field may be absent from an event (it then takes ``default``).
        default: the default value (Avro's, ``None`` for a ``null`` default).
        unit: physical unit of a numeric field (``""`` when not given).
        min: lowest accepted value of a numeric field (``None``: unbounded).
        max: highest accepted value of a numeric field (``None``: unbounded).
        min_length: shortest accepted string, in characters (``minLength``; default 1, or 0
            when the field's default is the empty string).
        max_length: longest accepted string, in UTF-8 bytes.
        pattern: regular expression a string must match as a whole (``None``: any).
        symbols: the symbols of an ``enum``.
        aliases: other names (``lakeless import`` accepts them as CSV columns).
        doc: the field's documentation.
        logical_type: Avro logical type, e.g. ``timestamp-millis``.
        example: a typical value (the ``example`` attribute, else derived from the range).
    """

    name: str
    type: str
    nullable: bool = False
    has_default: bool = False
    default: Any = None
    unit: str = ""
    min: float | None = None
    max: float | None = None
    min_length: int = 1
    max_length: int = DEFAULT_MAX_LENGTH
    pattern: str | None = None
    symbols: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    doc: str = ""
    logical_type: str | None = None
    example: Any = None

    @property
    def numeric(self) -> bool:
        """Numbers (booleans count as 0/1)."""
        return self.type in _NUMERIC

    @property
    def integer(self) -> bool:
        """``int`` or ``long``."""
        return self.type in _INTEGER

    @property
    def string(self) -> bool:
        """``string`` or ``enum``."""
        return self.type in _STRING


@dataclass(frozen=True, eq=False)
class PipelineSchema:
    """A parsed pipeline schema: fields in order, roles, features, fingerprint.

    Build with `load_schema`. Two schemas are equal when their Avro JSON is equal.

    Attributes:
        raw: the schema JSON object as given (what the schema registry stores).
        name: the record's full name.
        fields: every field, in schema order.
        key: the entity id field (also the Kafka record key).
        time: the event time field (ms since the epoch).
        sequence: the per-entity counter field, if any.
        label: the ground-truth label field, if any (never a model input).
        context: string fields kept with each reading, not modelled.
        fingerprint: CRC-64-AVRO of the Parsing Canonical Form, as the 8 bytes Avro writes.
    """

    raw: Mapping[str, Any]
    name: str
    fields: tuple[FieldSpec, ...]
    key: str
    time: str
    sequence: str | None
    label: str | None
    context: tuple[str, ...]
    fingerprint: bytes
    _by_name: Mapping[str, FieldSpec] = field(repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PipelineSchema):
            return NotImplemented
        return self.canonical_json == other.canonical_json

    def __hash__(self) -> int:
        return hash(self.canonical_json)

    def __repr__(self) -> str:
        return (
            f"PipelineSchema({self.name!r}, {len(self.features)} features, "
            f"fingerprint {self.fingerprint_hex})"
        )

    @functools.cached_property
    def canonical_json(self) -> str:
        """The schema JSON with sorted keys: equal text, equal schema."""
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"))

    @property
    def fingerprint_hex(self) -> str:
        """`fingerprint` as 16 hex digits (the bytes in order, as fastavro prints it)."""
        return self.fingerprint.hex()

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``.

        Raises:
            KeyError: no such field.
        """
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @functools.cached_property
    def field_names(self) -> tuple[str, ...]:
        """Every field name, in schema order."""
        return tuple(f.name for f in self.fields)

    @functools.cached_property
    def features(self) -> tuple[FieldSpec, ...]:
        """The model inputs: every numeric field that is not key, time or sequence."""
        roles = {self.key, self.time, self.sequence, self.label}
        return tuple(f for f in self.fields if f.numeric and f.name not in roles)

    @functools.cached_property
    def feature_names(self) -> tuple[str, ...]:
        """Names of `features`, in order."""
        return tuple(f.name for f in self.features)

    @functools.cached_property
    def strings(self) -> tuple[str, ...]:
        """The string fields a reading carries, in layout order: key, context, label.

        Context fields come in schema (field) order, whatever order ``lakeless.context``
        lists them in (``docs/data-contract.md`` §3).
        """
        context = tuple(name for name in self.field_names if name in self.context)
        return (self.key, *context, *((self.label,) if self.label else ()))

    @functools.cached_property
    def ignored(self) -> tuple[str, ...]:
        """Fields that are neither a role nor a feature (string fields outside ``context``)."""
        used = {self.time, self.sequence, *self.strings, *self.feature_names}
        return tuple(f.name for f in self.fields if f.name not in used)

    def example(self, **overrides: Any) -> dict[str, Any]:
        """A valid, typical event as a dict (field examples, else mid-range values)."""
        event: dict[str, Any] = {}
        for spec in self.fields:
            if spec.name == self.time:
                event[spec.name] = 1_700_000_000_000
            elif spec.name == self.sequence:
                event[spec.name] = 0
            elif spec.name == self.label:
                event[spec.name] = None
            else:
                event[spec.name] = spec.example
        event.update(overrides)
        return event

    def roles_json(self) -> dict[str, Any]:
        """The ``lakeless`` attribute, normalised."""
        return {
            "key": self.key,
            "time": self.time,
            "sequence": self.sequence,
            "label": self.label,
            "context": list(self.context),
        }

    def features_json(self) -> list[dict[str, Any]]:
        """The features: name, type, unit and range (``min``, ``max``)."""
        return [
            {"name": f.name, "type": f.type, "unit": f.unit, "min": f.min, "max": f.max}
            for f in self.features
        ]


def load_schema(source: str | Path | Mapping[str, Any]) -> PipelineSchema:
    """Parse a pipeline schema from a file path, a JSON string or a parsed JSON object.

    Raises:
        SchemaError: it is not valid Avro, or not a valid lakeless pipeline schema.
    """
    where = "schema"
    if isinstance(source, Path) or (
        isinstance(source, str) and not source.lstrip().startswith("{")
    ):
        path = Path(source)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read schema file {path}: {exc}") from exc
        source = text
    if isinstance(source, str):
        try:
            parsed = json.loads(source)
        except ValueError as exc:
            raise SchemaError(f"{where}: not JSON: {exc}") from exc
    else:
        parsed = source
    if not isinstance(parsed, Mapping):
        raise SchemaError(f"{where}: an Avro record schema is a JSON object")
    return _parse(dict(parsed), where)


def _parse(raw: dict[str, Any], where: str) -> PipelineSchema:
    if raw.get("type") != "record":
        raise SchemaError(f'{where}: the top level must be an Avro record ("type": "record")')
    try:
        fastavro.schema.parse_schema(raw)
        canonical = fastavro.schema.to_parsing_canonical_form(raw)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise SchemaError(f"{where}: not a valid Avro schema: {exc}") from exc
    name = str(raw["name"])
    if raw.get("namespace"):
        name = f"{raw['namespace']}.{name}"
    fields = tuple(_field(f, where) for f in raw.get("fields", []))
    if not fields:
        raise SchemaError(f"{where}: the record has no fields")
    by_name = {f.name: f for f in fields}
    roles = raw.get("lakeless")
    if not isinstance(roles, Mapping):
        raise SchemaError(
            f'{where}: the record needs a "lakeless" attribute naming at least "key" and "time", '
            'e.g. "lakeless": {"key": "device_id", "time": "ts"}'
        )
    unknown = sorted(set(roles) - _ROLE_KEYS)
    if unknown:
        raise SchemaError(
            f'{where}: unknown key(s) {unknown} in "lakeless" (known: {sorted(_ROLE_KEYS)})'
        )

    def role(which: str, required: bool) -> str | None:
        value = roles.get(which)
        if value is None:
            if required:
                raise SchemaError(f'{where}: "lakeless" must name the "{which}" field')
            return None
        if not isinstance(value, str) or value not in by_name:
            raise SchemaError(
                f'{where}: "lakeless.{which}" is {value!r}, not a field of the record '
                f"(fields: {', '.join(by_name)})"
            )
        return value

    key = role("key", True)
    time = role("time", True)
    assert key is not None and time is not None  # required roles
    sequence = role("sequence", False)
    label = role("label", False)
    context_value = roles.get("context") or []
    if not isinstance(context_value, list) or not all(isinstance(c, str) for c in context_value):
        raise SchemaError(f'{where}: "lakeless.context" must be a list of field names')
    for item in context_value:
        if item not in by_name:
            raise SchemaError(f'{where}: "lakeless.context" names {item!r}, not a field')
    context = tuple(context_value)
    named = [key, time, sequence, label, *context]
    taken = [item for item in named if item is not None]
    if len(taken) != len(set(taken)):
        raise SchemaError(f'{where}: a field has two roles in "lakeless": {taken}')
    _check_role(by_name[key], "key", where, string=True, nullable=False)
    _check_role(by_name[time], "time", where, integer=True)
    if sequence is not None:
        _check_role(by_name[sequence], "sequence", where, integer=True)
    if label is not None:
        _check_role(by_name[label], "label", where, string=True, nullable=True)
    for item in context:
        _check_role(by_name[item], "context", where, string=True, nullable=True)
    key_spec = by_name[key]
    if key_spec.pattern is None:
        by_name[key] = key_spec = _replace(key_spec, pattern=DEFAULT_KEY_PATTERN)
    fields = tuple(by_name[f.name] for f in fields)
    for spec in fields:
        if spec.nullable and spec.numeric:
            raise SchemaError(
                f"{where}: field {spec.name!r} is a nullable number; a model needs every input, "
                'so give it a "default" instead of a null union'
            )
    schema = PipelineSchema(
        raw=raw,
        name=name,
        fields=fields,
        key=key,
        time=time,
        sequence=sequence,
        label=label,
        context=context,
        fingerprint=fingerprint,
        _by_name=by_name,
    )
    if not schema.features:
        raise SchemaError(
            f"{where}: the record has no feature: declare at least one numeric field that is "
            "not the key, time or sequence"
        )
    return schema


def _replace(spec: FieldSpec, **changes: Any) -> FieldSpec:
    values = {name: getattr(spec, name) for name in FieldSpec.__dataclass_fields__}
    values.update(changes)
    return FieldSpec(**values)


def _check_role(
    spec: FieldSpec,
    role: str,
    where: str,
    *,
    string: bool = False,
    integer: bool = False,
    nullable: bool = False,
) -> None:
    if string and not spec.string:
        raise SchemaError(f"{where}: the {role} field {spec.name!r} must be a string or enum")
    if integer and not spec.integer:
        raise SchemaError(f"{where}: the {role} field {spec.name!r} must be an int or long")
    if spec.nullable and not nullable:
        raise SchemaError(f"{where}: the {role} field {spec.name!r} cannot be nullable")


def _field(raw: Any, where: str) -> FieldSpec:
    name = raw["name"]
    if not isinstance(name, str) or not _AVRO_NAME.match(name):
        raise SchemaError(
            f"{where}: field name {name!r} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)"
        )
    avro_type = raw["type"]
    nullable = False
    if isinstance(avro_type, list):
        members = [t for t in avro_type if t != "null"]
        nullable = len(members) != len(avro_type)
        if len(members) != 1:
            raise SchemaError(
                f"{where}: field {name!r}: a union may only add null to one type, got {avro_type}"
            )
        avro_type = members[0]
    logical = None
    symbols = None
    if isinstance(avro_type, Mapping):
        logical = avro_type.get("logicalType")
        if avro_type.get("type") == "enum":
            symbols = tuple(avro_type["symbols"])
        avro_type = avro_type.get("type")
    if avro_type not in _NUMERIC | _STRING:
        raise SchemaError(
            f"{where}: field {name!r} has type {raw['type']!r}; lakeless reads flat records of "
            "numbers (int, long, float, double, boolean), strings and enums"
        )
    if logical is not None and logical not in ("timestamp-millis", "local-timestamp-millis"):
        raise SchemaError(
            f"{where}: field {name!r}: logical type {logical!r} is not supported "
            "(timestamp-millis is; declare other values as plain numbers or strings)"
        )
    has_default = "default" in raw
    spec = FieldSpec(
        name=name,
        type=str(avro_type),
        nullable=nullable,
        has_default=has_default,
        default=raw.get("default"),
        unit=str(raw.get("unit", "")),
        min=_bound(raw, "min", where),
        max=_bound(raw, "max", where),
        min_length=_min_length(raw, where),
        max_length=_max_length(raw, where),
        pattern=_pattern(raw, where),
        symbols=symbols,
        aliases=tuple(raw.get("aliases") or ()),
        doc=str(raw.get("doc", "")),
        logical_type=logical,
        example=raw.get("example"),
    )
    if spec.numeric:
        spec = _check_range(spec, where)
    if spec.example is None:
        spec = _replace(spec, example=_default_example(spec))
    return spec


def _bound(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaError(f"{where}: field {raw['name']!r}: {key!r} must be a finite number")
    return value


def _check_range(spec: FieldSpec, where: str) -> FieldSpec:
    low, high = spec.min, spec.max
    if low is not None and high is not None and low > high:
        raise SchemaError(f"{where}: field {spec.name!r}: min {low} is above max {high}")
    if spec.type in _INT_RANGE:
        lowest, highest = _INT_RANGE[spec.type]
        low = lowest if low is None else max(low, lowest)
        high = highest if high is None else min(high, highest)
        return _replace(spec, min=low, max=high)
    if spec.type == "float":
        low = -_FLOAT_MAX if low is None else low
        high = _FLOAT_MAX if high is None else high
        return _replace(spec, min=low, max=high)
    if spec.type == "boolean":
        return _replace(spec, min=0, max=1)
    return spec


def _max_length(raw: Mapping[str, Any], where: str) -> int:
    value = raw.get("maxLength", DEFAULT_MAX_LENGTH)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_STRING_BYTES:
        raise SchemaError(
            f"{where}: field {raw['name']!r}: maxLength must be an integer from 1 to "
            f"{MAX_STRING_BYTES}"
        )
    return value


def _min_length(raw: Mapping[str, Any], where: str) -> int:
    # Empty strings are refused unless declared, or the field's own default is one.
    value = raw.get("minLength", 0 if raw.get("default") == "" else 1)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_STRING_BYTES:
        raise SchemaError(f"{where}: field {raw['name']!r}: minLength must be an integer >= 0")
    return value


def _pattern(raw: Mapping[str, Any], where: str) -> str | None:
    value = raw.get("pattern")
    if value is None:
        return None
    try:
        re.compile(value)
    except (re.error, TypeError) as exc:
        raise SchemaError(f"{where}: field {raw['name']!r}: bad pattern {value!r}: {exc}") from exc
    return str(value)


def _default_example(spec: FieldSpec) -> Any:
    if spec.has_default and spec.default is not None:
        return spec.default
    if spec.type == "enum":
        return spec.symbols[0] if spec.symbols else None
    if spec.string:
        return "example-1"
    if spec.type == "boolean":
        return False
    low = spec.min if spec.min is not None else 0.0
    high = spec.max if spec.max is not None else low + 1.0
    middle = low + (high - low) / 2 if math.isfinite(high - low) else 0.0
    return int(middle) if spec.integer else float(middle)
