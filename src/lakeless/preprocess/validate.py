"""Batch validation of raw records against a pipeline's schema.

The hot path is one ``msgspec`` decode per good record into the schema's generated event type
(`lakeless.schema.EventCodec`: types, ranges, string lengths, the key's pattern) plus a few
cheap checks that ``msgspec`` cannot do: duplicate keys, event-time skew, the record key, and
string limits in UTF-8 bytes. The checks are generated for the schema (`_fastcheck`) and
each is a necessary condition (an object holds two quotes per key and per string value, and
more only with escaped quotes or a repeated key); a record that trips one gets the exact
check. Only a record that fails pays for diagnosis: a structural check of the parsed JSON
against the schema, field by field, gives a stable `Reason` code, the field and a human
detail; the classification never depends on a library's error wording, nor on how deep the
caller's stack is (JSON nested deeper than `MAX_NESTING` levels is ``invalid_json``).

Event-time checks are made against the record's Kafka timestamp when the caller passes it, and
against the wall clock otherwise, so that replaying a raw topic months later gives the same
verdicts as the first pass did.

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.schema import EventCodec
    >>> schema = car_fleet()
    >>> validator = Validator(schema)
    >>> good = EventCodec(schema).encode(schema.example(ts=1_700_000_000_000))
    >>> event, bad = validator.validate_batch([good, b'{"car_id": "car-1"}'])
    >>> event.car_id
    'car-1'
    >>> bad.reason, bad.field
    (<Reason.MISSING_FIELD: 'missing_field'>, 'ts')
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from lakeless.errors import RecordError
from lakeless.preprocess._fastcheck import compile_fast_check
from lakeless.preprocess._settings import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FUTURE_MS,
    DEFAULT_MIN_TS_MS,
)
from lakeless.schema import EventCodec, FieldSpec, PipelineSchema

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FUTURE_MS",
    "DEFAULT_MIN_TS_MS",
    "MAX_NESTING",
    "Reason",
    "Rejection",
    "Validator",
]


class Reason(enum.StrEnum):
    """Why a record was dead-lettered; the values are stable and machine-readable."""

    EMPTY = "empty"
    """Tombstone (null value), empty or whitespace-only value."""
    TOO_LARGE = "too_large"
    """Value longer than the validator's ``max_bytes``."""
    NOT_UTF8 = "not_utf8"
    """Bytes that are not valid UTF-8."""
    INVALID_JSON = "invalid_json"
    """Not JSON: malformed, truncated, trailing garbage, byte-order mark, lone surrogate, or
    nested deeper than `MAX_NESTING` levels."""
    NOT_AN_OBJECT = "not_an_object"
    """Valid JSON whose top level is not an object (array, string, number, null, bool)."""
    MISSING_FIELD = "missing_field"
    """A required field (one without a default) is absent."""
    UNKNOWN_FIELD = "unknown_field"
    """A field the schema does not know (the schema rejects unknown fields)."""
    DUPLICATE_FIELD = "duplicate_field"
    """The same key appears twice in the object."""
    WRONG_TYPE = "wrong_type"
    """A value of the wrong JSON type: string or bool for a number, float for an integer, ..."""
    NOT_FINITE = "not_finite"
    """NaN or infinity: a ``NaN``/``Infinity`` token or a number overflowing float64."""
    OUT_OF_RANGE = "out_of_range"
    """A number outside its declared range (``min``/``max``, or the type's)."""
    INVALID_KEY = "invalid_key"
    """The key field empty, too long, or not matching its pattern."""
    INVALID_STRING = "invalid_string"
    """Another string field too short, too long (UTF-8 bytes), off its pattern or its enum."""
    TS_IN_FUTURE = "ts_in_future"
    """Event time further ahead of the reference time than ``max_future_ms``."""
    TS_TOO_OLD = "ts_too_old"
    """Event time before ``min_ts_ms`` or older than ``max_age_ms``."""
    KEY_MISMATCH = "key_mismatch"
    """The Kafka record key is present and differs from the key field."""
    SCHEMA_VIOLATION = "schema_violation"
    """Any other violation of the schema."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that failed validation.

    Attributes:
        reason: the stable code.
        detail: human-readable explanation.
        field: the offending field, when one is known.
    """

    reason: Reason
    detail: str
    field: str | None = None

    def error(self, raw: bytes | None = None) -> RecordError:
        """This rejection as a `RecordError` carrying the raw bytes."""
        return RecordError(self.reason.value, self.detail, raw)


#: Deepest nesting of arrays and objects the diagnosis parses: an event is a flat object, so
#: any nesting is already wrong; the limit keeps verdicts independent of the caller's stack
#: (recursive parsers fail at a depth that depends on it) and bad records cheap.
MAX_NESTING: Final = 100
_INT64_MAX: Final = 2**63 - 1
_DETAIL_VALUE_LEN: Final = 80
_BOM: Final = b"\xef\xbb\xbf"
_NOT_FINITE_TOKEN: Final = re.compile(
    rb'"(?P<field>[^"\\]*)"\s*:\s*[-+]?(?:nan|inf(?:inity)?)\b', re.I
)
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")


class Validator:
    """Validates raw values into event objects of the schema, or `Rejection` objects.

    Args:
        schema: the pipeline schema.
        max_bytes: longest accepted value in bytes (``too_large`` above).
        max_future_ms: how far event time may run ahead of the reference time (the record's
            Kafka timestamp, else the wall clock); ``None`` disables the check.
        max_age_ms: how far event time may lag behind the reference time; ``None`` (the
            default) disables the check, so that recorded data of any age can be imported.
        min_ts_ms: earliest accepted event time; ``None`` disables the check. The default,
            2000-01-01, rejects timestamps sent in seconds instead of milliseconds.
        check_duplicates: reject duplicate JSON keys (``msgspec`` silently keeps the last
            one). Costs well under a microsecond per good record (one pass counting quotes).
        clock: wall clock in seconds, for tests.
    """

    def __init__(
        self,
        schema: PipelineSchema,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_future_ms: int | None = DEFAULT_MAX_FUTURE_MS,
        max_age_ms: int | None = None,
        min_ts_ms: int | None = DEFAULT_MIN_TS_MS,
        check_duplicates: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        for name, value in (("max_future_ms", max_future_ms), ("max_age_ms", max_age_ms)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        self.schema = schema
        self.events = EventCodec(schema)
        self.max_bytes = max_bytes
        self.max_future_ms = max_future_ms
        self.max_age_ms = max_age_ms
        self.min_ts_ms = min_ts_ms
        self.check_duplicates = check_duplicates
        self._clock = clock
        # Per good record: one generated function (`lakeless.preprocess._fastcheck`).
        self._suspect = compile_fast_check(schema, check_duplicates=check_duplicates)

    def __repr__(self) -> str:
        return (
            f"Validator({self.schema.name!r}, max_bytes={self.max_bytes}, "
            f"max_future_ms={self.max_future_ms}, max_age_ms={self.max_age_ms}, "
            f"min_ts_ms={self.min_ts_ms}, check_duplicates={self.check_duplicates})"
        )

    def validate(
        self,
        value: bytes | None,
        key: bytes | None = None,
        timestamp: int | None = None,
        *,
        now_ms: int | None = None,
    ) -> Any:
        """Validate one record (the event object, or a `Rejection`); see `validate_batch`."""
        return self.validate_batch(
            [value],
            None if key is None else [key],
            None if timestamp is None else [timestamp],
            now_ms=now_ms,
        )[0]

    def validate_batch(
        self,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        timestamps: Sequence[int | None] | None = None,
        *,
        now_ms: int | None = None,
    ) -> list[Any]:
        """Validate a batch of raw record values.

        Args:
            values: record values; ``None`` is a tombstone.
            keys: record keys, aligned with ``values``; a ``None`` key is not checked.
            timestamps: Kafka record timestamps in ms, aligned with ``values``; ``None`` or a
                negative value (librdkafka's "not available") falls back to the wall clock.
            now_ms: the wall clock for this batch (read once from ``clock`` when omitted).

        Returns:
            One result per value, in order: the event object, or a `Rejection`.
        """
        if keys is not None and len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        if timestamps is not None and len(timestamps) != len(values):
            raise ValueError(f"{len(timestamps)} timestamps for {len(values)} values")
        if now_ms is None:
            now_ms = int(self._clock() * 1000)
        lowest, highest = self._bounds(now_ms, None)
        future, age, earliest = self.max_future_ms, self.max_age_ms, self.min_ts_ms
        per_record = future is not None or age is not None
        references: Sequence[int | None] = timestamps if timestamps and per_record else ()
        decode = self.events.decode
        suspect = self._suspect
        max_bytes = self.max_bytes
        out: list[Any] = []
        append = out.append
        # The loop is the hot path: a good record pays for its decode and one cheap necessary
        # condition (`_fastcheck`); `_check` decides exactly.
        for i, value in enumerate(values):
            if not value or len(value) > max_bytes:
                append(self._diagnose(value))
                continue
            try:
                event = decode(value)
            except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
                append(self._diagnose(value))
                continue
            low, high = lowest, highest
            if references and (reference := references[i]) is not None and reference >= 0:
                if future is not None:
                    high = (reference if reference < now_ms else now_ms) + future
                if age is not None:
                    low = reference - age
                    if earliest is not None and earliest > low:
                        low = earliest
            key = keys[i] if keys is not None else None
            if suspect(value, event, low, high, key):
                problem = self._check(value, event, key, low, high)
                if problem is not None:
                    append(problem)
                    continue
            append(event)
        return out

    def _bounds(self, now_ms: int, record_ts: int | None) -> tuple[int, int]:
        """Lowest and highest accepted event time against a reference time."""
        reference = now_ms if record_ts is None or record_ts < 0 else record_ts
        high = _INT64_MAX
        if self.max_future_ms is not None:
            high = min(high, min(reference, now_ms) + self.max_future_ms)
        low = 0
        if self.min_ts_ms is not None:
            low = self.min_ts_ms
        if self.max_age_ms is not None:
            low = max(low, reference - self.max_age_ms)
        return low, high

    def _check(
        self, value: bytes, event: Any, key: bytes | None, low: int, high: int
    ) -> Rejection | None:
        """Slow path for a decoded event that tripped a cheap check; None if it is fine."""
        schema = self.schema
        if self.check_duplicates and (duplicate := _find_duplicate(value)) is not None:
            return Rejection(Reason.DUPLICATE_FIELD, f"key `{duplicate}` appears twice", duplicate)
        for spec in schema.fields:
            if spec.string and spec.symbols is None:
                text = getattr(event, spec.name)
                if text is not None and len(text.encode()) > spec.max_length:
                    return Rejection(
                        Reason.INVALID_KEY if spec.name == schema.key else Reason.INVALID_STRING,
                        f"{spec.name} is {len(text.encode())} UTF-8 bytes long, at most "
                        f"{spec.max_length} are allowed",
                        spec.name,
                    )
        entity = getattr(event, schema.key)
        if key is not None and key != entity.encode():
            return Rejection(
                Reason.KEY_MISMATCH,
                f"record key {_show(key)} differs from {schema.key} {_show(entity)}",
                schema.key,
            )
        ts = getattr(event, schema.time)
        name = schema.time
        if ts > high:
            return Rejection(
                Reason.TS_IN_FUTURE,
                f"{name} {ts} is {ts - high + (self.max_future_ms or 0)} ms ahead of the "
                f"reference time (allowed skew {self.max_future_ms} ms)",
                name,
            )
        if ts < low:
            if self.min_ts_ms is not None and ts < self.min_ts_ms:
                return Rejection(
                    Reason.TS_TOO_OLD,
                    f"{name} {ts} is before the earliest accepted time {self.min_ts_ms} "
                    "(seconds instead of milliseconds?)",
                    name,
                )
            return Rejection(
                Reason.TS_TOO_OLD,
                f"{name} {ts} is older than the allowed age of {self.max_age_ms} ms",
                name,
            )
        return None

    def _diagnose(self, value: bytes | None) -> Rejection:
        """Explain why ``value`` does not decode (the slow path for bad records)."""
        if value is None:
            return Rejection(Reason.EMPTY, "tombstone (null value)")
        if not value.strip():
            return Rejection(Reason.EMPTY, f"value is empty ({len(value)} bytes of whitespace)")
        if len(value) > self.max_bytes:
            return Rejection(
                Reason.TOO_LARGE,
                f"value is {len(value)} bytes, the limit is {self.max_bytes}",
            )
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(
                Reason.NOT_UTF8,
                f"invalid UTF-8 at byte {exc.start}: {_show(value[exc.start : exc.start + 4])}",
            )
        if value.startswith(_BOM):
            return Rejection(Reason.INVALID_JSON, "value starts with a UTF-8 byte-order mark")
        if _too_deep(value):
            return Rejection(
                Reason.INVALID_JSON, f"arrays or objects nested deeper than {MAX_NESTING} levels"
            )
        try:
            parsed = msgspec.json.decode(value)
        except msgspec.ValidationError:  # a number too large for float64 (e.g. 1e999)
            return _non_finite(value) or Rejection(Reason.NOT_FINITE, "a number overflows float64")
        except msgspec.DecodeError as exc:
            return _non_finite(value) or Rejection(Reason.INVALID_JSON, str(exc))
        except RecursionError:  # within MAX_NESTING, but the caller's stack is nearly full
            return Rejection(Reason.INVALID_JSON, "nested too deeply for this call stack")
        if not isinstance(parsed, dict):
            return Rejection(
                Reason.NOT_AN_OBJECT, f"expected a JSON object, got {_json_kind(parsed)}"
            )
        if self.check_duplicates and (duplicate := _find_duplicate(value)) is not None:
            return Rejection(Reason.DUPLICATE_FIELD, f"key `{duplicate}` appears twice", duplicate)
        schema = self.schema
        for name in parsed:
            if name not in schema:
                return Rejection(
                    Reason.UNKNOWN_FIELD,
                    f"field `{name}` is not in the schema {schema.name}",
                    name,
                )
        for spec in schema.fields:
            if spec.name not in parsed:
                if not spec.has_default:
                    return Rejection(
                        Reason.MISSING_FIELD, f"required field `{spec.name}` is missing", spec.name
                    )
                continue
            problem = self._check_field(spec, parsed[spec.name])
            if problem is not None:
                return problem
        try:
            self.events.decode(value)
        except msgspec.MsgspecError as exc:  # a rule this diagnosis does not know (a bug)
            return Rejection(Reason.SCHEMA_VIOLATION, str(exc))
        # Decodes now: only reachable if a caller bypassed the fast path.
        return Rejection(Reason.SCHEMA_VIOLATION, "record decodes but was reported invalid")

    def _check_field(self, spec: FieldSpec, value: Any) -> Rejection | None:
        name = spec.name
        if value is None:
            if spec.nullable:
                return None
            return Rejection(
                Reason.WRONG_TYPE, f"{name}: expected {_type_name(spec)}, got null", name
            )
        if spec.string:
            return self._check_string(spec, value)
        if spec.type == "boolean":
            if isinstance(value, bool):
                return None
            return _wrong(spec, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _wrong(spec, value)
        if spec.integer and isinstance(value, float):
            return _wrong(spec, value)
        if isinstance(value, float) and not math.isfinite(value):
            return Rejection(Reason.NOT_FINITE, f"{name}: non-finite number {value}", name)
        if not spec.integer and isinstance(value, int):
            try:
                float(value)
            except OverflowError:
                return Rejection(
                    Reason.NOT_FINITE, f"{name}: {_show(value)} overflows float64", name
                )
        low, high = spec.min, spec.max
        if name in (self.schema.time, self.schema.sequence):
            low = 0 if low is None else max(low, 0)
            high = _INT64_MAX if high is None else min(high, _INT64_MAX)
        if (low is not None and value < low) or (high is not None and value > high):
            unit = f" {spec.unit}" if spec.unit else ""
            return Rejection(
                Reason.OUT_OF_RANGE,
                f"{name}: {_show(value)}{unit} is outside [{_num(low)}, {_num(high)}]",
                name,
            )
        return None

    def _check_string(self, spec: FieldSpec, value: Any) -> Rejection | None:
        name = spec.name
        if not isinstance(value, str):
            return _wrong(spec, value)
        reason = Reason.INVALID_KEY if name == self.schema.key else Reason.INVALID_STRING
        if spec.symbols is not None:  # the symbols are the rule (no length or pattern)
            if value in spec.symbols:
                return None
            return Rejection(
                reason, f"{name}: {_show(value)} is not one of {list(spec.symbols)}", name
            )
        size = len(value.encode())
        if len(value) < spec.min_length:
            return Rejection(
                reason,
                f"{name}: {_show(value)} is shorter than {spec.min_length} characters",
                name,
            )
        if size > spec.max_length:
            return Rejection(
                reason,
                f"{name} is {size} UTF-8 bytes long, at most {spec.max_length} are allowed",
                name,
            )
        if spec.pattern is not None and re.fullmatch(spec.pattern, value) is None:
            return Rejection(
                reason, f"{name}: {_show(value)} does not match {spec.pattern!r}", name
            )
        return None


def _wrong(spec: FieldSpec, value: Any) -> Rejection:
    return Rejection(
        Reason.WRONG_TYPE,
        f"{spec.name}: expected {_type_name(spec)}, got {_json_kind(value)} {_show(value)}",
        spec.name,
    )


def _type_name(spec: FieldSpec) -> str:
    kind = {
        "int": "an integer",
        "long": "an integer",
        "float": "a number",
        "double": "a number",
        "boolean": "true or false",
        "string": "a string",
        "enum": "a string",
    }[spec.type]
    return f"{kind} or null" if spec.nullable else kind


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _num(value: float | None) -> str:
    if value is None:
        return "-inf"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}"


def _too_deep(value: bytes) -> bool:
    """Whether arrays and objects nest deeper than `MAX_NESTING` levels outside strings."""
    if value.count(b"[") + value.count(b"{") <= MAX_NESTING:
        return False  # cannot nest deeper than it has brackets
    depth = 0
    for byte in _JSON_STRING.sub(b"", value).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > MAX_NESTING:
                return True
        else:
            depth -= 1
    return False


def _contains_non_finite(item: Any) -> bool:
    if isinstance(item, float):
        return not math.isfinite(item)
    if isinstance(item, list):
        return any(_contains_non_finite(x) for x in item)
    if isinstance(item, dict):
        return any(_contains_non_finite(x) for x in item.values())
    return False


def _non_finite(value: bytes) -> Rejection | None:
    """A `Rejection` naming a NaN/Infinity token or an overflowing number, if there is one.

    The field is the top-level one whose value holds it (at any depth).
    """
    found: list[str] = []

    def constant(token: str) -> float:
        found.append(token)
        return math.nan

    field = None
    try:
        parsed = json.loads(value, parse_constant=constant)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        for name, item in parsed.items():
            if _contains_non_finite(item):
                field = name
                break
    if field is not None:
        token = found[0] if found else "a number that overflows float64"
        return Rejection(Reason.NOT_FINITE, f"{field}: non-finite number {token}", field)
    match = _NOT_FINITE_TOKEN.search(value)
    if match is not None:
        field = match.group("field").decode(errors="replace")
        return Rejection(Reason.NOT_FINITE, f"{field}: non-finite number token", field)
    return None


def _find_duplicate(value: bytes) -> str | None:
    """The first key that appears twice in the top-level JSON object, if any.

    Keys repeated inside a nested value do not count: such a value is of the wrong type.
    """
    top: list[str | None] = [None]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        # Called for every object, innermost first: the last call is the top level's.
        seen: set[str] = set()
        top[0] = None
        for name, _ in items:
            if name in seen:
                top[0] = name
                break
            seen.add(name)
        return dict(items)

    try:
        parsed = json.loads(value, object_pairs_hook=pairs, parse_constant=lambda _token: None)
    except (ValueError, RecursionError):
        return None
    return top[0] if isinstance(parsed, dict) else None


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > _DETAIL_VALUE_LEN:
        text = text[: _DETAIL_VALUE_LEN - 3] + "..."
    return text
