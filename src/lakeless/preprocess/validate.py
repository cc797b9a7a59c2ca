"""Batch validation of raw sensor records against the `SensorEvent` contract.

The hot path is one ``msgspec`` decode per good record (the decoder enforces types and physical
ranges) plus a few cheap checks that ``msgspec`` cannot do: duplicate keys, event-time skew,
the record key, and byte lengths that `lakeless.schema.encode_clean` relies on. Only a record
that fails pays for diagnosis, which turns the failure into a stable `Reason` code and a human
detail.

Event-time checks are made against the record's Kafka timestamp when the caller passes it, and
against the wall clock otherwise, so that replaying ``sensor-raw`` months later gives the same
verdicts as the first pass did.

Example:
    >>> from lakeless.schema import make_example_json
    >>> validator = Validator()
    >>> good, bad = validator.validate_batch([make_example_json(), b'{"car_id": "car-1"}'])
    >>> good.car_id
    'car-1'
    >>> bad.reason, bad.field
    (<Reason.MISSING_FIELD: 'missing_field'>, 'ts')
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from lakeless.errors import RecordError
from lakeless.schema import MAX_NAME_LEN, REQUIRED_FIELDS, SensorEvent

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FUTURE_MS",
    "DEFAULT_MIN_TS_MS",
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
    """Not JSON: malformed, truncated, trailing garbage, byte-order mark, lone surrogate."""
    NOT_AN_OBJECT = "not_an_object"
    """Valid JSON whose top level is not an object (array, string, number, null, bool)."""
    MISSING_FIELD = "missing_field"
    """A required field is absent."""
    UNKNOWN_FIELD = "unknown_field"
    """A field the schema does not know (the schema rejects unknown fields)."""
    DUPLICATE_FIELD = "duplicate_field"
    """The same key appears twice in the object."""
    WRONG_TYPE = "wrong_type"
    """A value of the wrong JSON type: string or bool for a number, float for an integer, ..."""
    NOT_FINITE = "not_finite"
    """NaN or infinity: a ``NaN``/``Infinity`` token or a number overflowing float64."""
    OUT_OF_RANGE = "out_of_range"
    """A number outside its physical range (includes negative ``seq``, ``ts`` beyond int64)."""
    INVALID_CAR_ID = "invalid_car_id"
    """``car_id`` empty, too long or not matching `lakeless.schema.CAR_ID_PATTERN`."""
    INVALID_STRING = "invalid_string"
    """``model`` or ``failure`` empty or longer than `MAX_NAME_LEN` UTF-8 bytes."""
    TS_IN_FUTURE = "ts_in_future"
    """Event time further ahead of the reference time than ``max_future_ms``."""
    TS_TOO_OLD = "ts_too_old"
    """Event time before ``min_ts_ms`` or older than ``max_age_ms``."""
    KEY_MISMATCH = "key_mismatch"
    """The Kafka record key is present and differs from ``car_id``."""
    SCHEMA_VIOLATION = "schema_violation"
    """Any other schema violation (a ``msgspec`` message this module does not classify)."""


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


#: Default size limit of one raw record (bytes); a valid event is about 600 bytes.
DEFAULT_MAX_BYTES: Final = 64 * 1024
#: Default allowed clock skew of devices: event time at most 5 minutes ahead.
DEFAULT_MAX_FUTURE_MS: Final = 5 * 60 * 1000
#: Default earliest event time, 2000-01-01T00:00:00Z. It catches timestamps sent in seconds
#: instead of milliseconds (which land in January 1970) and keeps recorded data from 2019.
DEFAULT_MIN_TS_MS: Final = 946_684_800_000
_INT64_MAX: Final = 2**63 - 1
_DETAIL_VALUE_LEN: Final = 80

_decoder: Final = msgspec.json.Decoder(SensorEvent)
_any_decoder: Final = msgspec.json.Decoder()


def _string_fields() -> frozenset[str]:
    info = msgspec.inspect.type_info(SensorEvent)
    assert isinstance(info, msgspec.inspect.StructType)
    out = set()
    for field in info.fields:
        kind: Any = field.type
        if isinstance(kind, msgspec.inspect.Metadata):
            kind = kind.type
        if isinstance(kind, msgspec.inspect.StrType):
            out.add(field.name)
    return frozenset(out)


# A duplicate-free event without backslash-escaped quotes holds exactly
# 2 * (keys + string values) quote characters; every duplicate key adds at least two.
_QUOTES_BASE: Final = 2 * len(REQUIRED_FIELDS) + 2 * len(_string_fields() & set(REQUIRED_FIELDS))
_FAILURE_KEY: Final = re.compile(rb'"failure"\s*:')
_COMPACT_NULL_FAILURE: Final = b'"failure":null}'

_AT_FIELD: Final = re.compile(r"^(?P<message>.*?)(?: - at `\$\.(?P<field>[^`\[.]+)`.*)?$", re.S)
_FIELD_IN_MESSAGE: Final = re.compile(r"field `(?P<field>[^`]*)`")
_NOT_FINITE_TOKEN: Final = re.compile(rb"[-+]?(?:nan|inf(?:inity)?)\b", re.I)
_BYTE_POS: Final = re.compile(r"\(byte (\d+)\)")
_BOM: Final = b"\xef\xbb\xbf"


class Validator:
    """Validates raw ``sensor-raw`` values into `SensorEvent` objects or `Rejection` objects.

    Args:
        max_bytes: longest accepted value in bytes (``too_large`` above).
        max_future_ms: how far event time may run ahead of the reference time (the record's
            Kafka timestamp, else the wall clock); ``None`` disables the check. An event time
            beyond int64 is always rejected (``out_of_range``).
        max_age_ms: how far event time may lag behind the reference time; ``None`` (the
            default) disables the check, so that recorded data of any age can be imported.
        min_ts_ms: earliest accepted event time; ``None`` disables the check. The default,
            2000-01-01, rejects timestamps sent in seconds instead of milliseconds.
        check_duplicates: reject duplicate JSON keys (``msgspec`` silently keeps the last
            one). Costs about 0.4 us per good record (one pass counting quotes).
        clock: wall clock in seconds, for tests.
    """

    def __init__(
        self,
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
        self.max_bytes = max_bytes
        self.max_future_ms = max_future_ms
        self.max_age_ms = max_age_ms
        self.min_ts_ms = min_ts_ms
        self.check_duplicates = check_duplicates
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"Validator(max_bytes={self.max_bytes}, max_future_ms={self.max_future_ms}, "
            f"max_age_ms={self.max_age_ms}, min_ts_ms={self.min_ts_ms}, "
            f"check_duplicates={self.check_duplicates})"
        )

    def validate(
        self,
        value: bytes | None,
        key: bytes | None = None,
        timestamp: int | None = None,
        *,
        now_ms: int | None = None,
    ) -> SensorEvent | Rejection:
        """Validate one record; see `validate_batch`."""
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
    ) -> list[SensorEvent | Rejection]:
        """Validate a batch of raw record values.

        Args:
            values: record values; ``None`` is a tombstone.
            keys: record keys, aligned with ``values``; a ``None`` key is not checked.
            timestamps: Kafka record timestamps in ms, aligned with ``values``; ``None`` or a
                negative value (librdkafka's "not available") falls back to the wall clock.
            now_ms: the wall clock for this batch (read once from ``clock`` when omitted).

        Returns:
            One result per value, in order: the event, or why it was rejected.
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
        decode = _decoder.decode
        max_bytes = self.max_bytes
        dedupe = self.check_duplicates
        base, base_null, base_str = _QUOTES_BASE, _QUOTES_BASE + 2, _QUOTES_BASE + 4
        compact_null, failure_key = _COMPACT_NULL_FAILURE, _FAILURE_KEY.search
        out: list[SensorEvent | Rejection] = []
        append = out.append
        # The loop is the hot path: everything a good record pays for is inlined here, and
        # each test is a cheap necessary condition; `_check` decides exactly.
        for i, value in enumerate(values):
            if not value or len(value) > max_bytes:
                append(self._diagnose(value))
                continue
            try:
                event = decode(value)
            except (msgspec.MsgspecError, UnicodeDecodeError):
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
            ts = event.ts
            model = event.model
            failure = event.failure
            suspect = (
                ts > high
                or ts < low
                or event.car_id[-1] == "\n"
                or not model.isascii()
                or (failure is not None and not failure.isascii())
            )
            if dedupe and not suspect:  # `_maybe_duplicate`, inlined
                if '"' in model or (failure is not None and '"' in failure):
                    suspect = True  # quotes inside strings break the count below
                else:
                    quotes = value.count(b'"')
                    if failure is not None:
                        suspect = quotes != base_str
                    elif quotes != base:
                        # 2 more: `"failure": null`, or one duplicated numeric key.
                        suspect = quotes != base_null or (
                            not value.endswith(compact_null) and failure_key(value) is None
                        )
            if (
                not suspect
                and keys is not None
                and (key := keys[i]) is not None
                and key != event.car_id.encode()
            ):
                suspect = True
            if suspect:
                problem = self._check(value, event, keys[i] if keys else None, low, high)
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
        self, value: bytes, event: SensorEvent, key: bytes | None, low: int, high: int
    ) -> Rejection | None:
        """Slow path for a decoded event that tripped a cheap check; None if it is fine."""
        if (
            self.check_duplicates
            and _maybe_duplicate(value, event)
            and (duplicate := _find_duplicate(value)) is not None
        ):
            return Rejection(Reason.DUPLICATE_FIELD, f"key `{duplicate}` appears twice", duplicate)
        if event.car_id[-1] == "\n":
            return Rejection(
                Reason.INVALID_CAR_ID,
                f"car_id {_show(event.car_id)} ends with a newline",
                "car_id",
            )
        for name in ("model", "failure"):
            text = getattr(event, name)
            if text is not None and len(text.encode()) > MAX_NAME_LEN:
                return Rejection(
                    Reason.INVALID_STRING,
                    f"{name} is {len(text.encode())} UTF-8 bytes long, at most {MAX_NAME_LEN} "
                    "are allowed",
                    name,
                )
        if key is not None and key != event.car_id.encode():
            return Rejection(
                Reason.KEY_MISMATCH,
                f"record key {_show(key)} differs from car_id {_show(event.car_id)}",
                "car_id",
            )
        if event.ts > high:
            if event.ts > _INT64_MAX:
                return Rejection(Reason.OUT_OF_RANGE, f"ts {event.ts} exceeds int64", "ts")
            return Rejection(
                Reason.TS_IN_FUTURE,
                f"ts {event.ts} is {event.ts - high + (self.max_future_ms or 0)} ms ahead of the "
                f"reference time (allowed skew {self.max_future_ms} ms)",
                "ts",
            )
        if event.ts < low:
            if self.min_ts_ms is not None and event.ts < self.min_ts_ms:
                return Rejection(
                    Reason.TS_TOO_OLD,
                    f"ts {event.ts} is before the earliest accepted time {self.min_ts_ms} "
                    "(seconds instead of milliseconds?)",
                    "ts",
                )
            return Rejection(
                Reason.TS_TOO_OLD,
                f"ts {event.ts} is older than the allowed age of {self.max_age_ms} ms",
                "ts",
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
        try:
            _decoder.decode(value)
        except msgspec.ValidationError as exc:
            return _classify_validation(str(exc), value)
        except msgspec.DecodeError as exc:
            return _classify_decode(str(exc), value)
        # Decodes now: only reachable if a caller bypassed the fast path.
        return Rejection(Reason.SCHEMA_VIOLATION, "record decodes but was reported invalid")


def _maybe_duplicate(value: bytes, event: SensorEvent) -> bool:
    """Cheap test: False proves ``value`` has no duplicate key; True means look closer."""
    failure = event.failure
    if '"' in event.model or (failure is not None and '"' in failure):
        return True  # quotes inside strings break the count below
    quotes = value.count(b'"')
    if failure is not None:
        return quotes != _QUOTES_BASE + 4  # failure key and its string value
    if quotes == _QUOTES_BASE:
        return False
    if quotes != _QUOTES_BASE + 2:
        return True
    # Either `"failure": null` or one duplicated numeric key.
    if value.endswith(_COMPACT_NULL_FAILURE):
        return False
    return _FAILURE_KEY.search(value) is None


def _find_duplicate(value: bytes) -> str | None:
    """The first top-level key that appears twice in a JSON object, if any."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for name, _ in items:
            if name in seen and not found:
                found.append(name)
            seen.add(name)
        return dict(items)

    try:
        json.loads(value, object_pairs_hook=pairs)
    except ValueError:
        return None
    return found[0] if found else None


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > _DETAIL_VALUE_LEN:
        text = text[: _DETAIL_VALUE_LEN - 3] + "..."
    return text


def _classify_decode(message: str, value: bytes) -> Rejection:
    if value.startswith(_BOM):
        return Rejection(Reason.INVALID_JSON, "value starts with a UTF-8 byte-order mark")
    if (match := _BYTE_POS.search(message)) is not None:
        # msgspec points somewhere in or just after the bad token (at the `I` of `-Infinity`,
        # after `nan,`), so look at the start of the value the error is in.
        pos = int(match.group(1))
        start = value.rfind(b":", 0, pos + 1) + 1
        while start < len(value) and value[start] in b" \t\r\n":
            start += 1
        token = _NOT_FINITE_TOKEN.match(value, start)
        if token is not None:
            return Rejection(
                Reason.NOT_FINITE, f"non-finite number {token.group().decode()} at byte {start}"
            )
    return Rejection(Reason.INVALID_JSON, message)


def _classify_validation(message: str, value: bytes) -> Rejection:
    match = _AT_FIELD.match(message)
    assert match is not None  # the pattern matches any string
    text, field = match.group("message"), match.group("field")
    if field is None:
        named = _FIELD_IN_MESSAGE.search(text)
        if text.startswith("Object missing required field") and named:
            return Rejection(Reason.MISSING_FIELD, text, named.group("field"))
        if text.startswith("Object contains unknown field") and named:
            return Rejection(Reason.UNKNOWN_FIELD, text, named.group("field"))
        if text.startswith("Expected `object`"):
            return Rejection(Reason.NOT_AN_OBJECT, text)
        return Rejection(Reason.SCHEMA_VIOLATION, message)
    shown = _field_value(value, field)
    if text == "Number out of range":
        return Rejection(Reason.NOT_FINITE, f"{field}: number overflows float64", field)
    if ", got `" in text:
        return Rejection(Reason.WRONG_TYPE, f"{field}: {text}{shown}", field)
    if field == "car_id" and ("`str` of length" in text or "matching regex" in text):
        return Rejection(Reason.INVALID_CAR_ID, f"car_id: {text}{shown}", field)
    if "`str` of length" in text:
        return Rejection(Reason.INVALID_STRING, f"{field}: {text}{shown}", field)
    if re.search(r"` [<>]=? ", text):
        return Rejection(Reason.OUT_OF_RANGE, f"{field}: {text}{shown}", field)
    return Rejection(Reason.SCHEMA_VIOLATION, f"{field}: {text}{shown}", field)


def _field_value(value: bytes, field: str) -> str:
    """``" (value <value>)"`` for the detail, or ``""`` when the value cannot be shown."""
    try:
        obj = _any_decoder.decode(value)
    except msgspec.MsgspecError:
        return ""
    if not isinstance(obj, dict) or field not in obj:
        return ""
    return f" (value {_show(obj[field])})"
