"""Good and bad raw records for any pipeline schema, shared by unit and integration tests.

Every function takes a `lakeless.schema.PipelineSchema` (the car fleet's by default) and
derives its records from it: `bad_records` gives, for every reason code a value alone decides,
records that the default `lakeless.preprocess.Validator` of that schema must dead-letter with
exactly that reason (several per reason, each with one defect); `bad_keyed_records` adds the
cases that need a record key; `edge_good_records` gives unusual records that must pass. For the
car fleet, the hand-written cases lakeless has always tested come on top.

Records are plain bytes (publish them over MQTT or produce them to Kafka); event times are
relative to the wall clock at call time. Each bad value identifies its expected reason: no
value appears twice. A reason the schema cannot produce is left out (``invalid_string`` needs
a string field besides the key, for instance).

Example:
    >>> from lakeless.examples import example_schema
    >>> from lakeless.preprocess import Validator
    >>> pumps = example_schema("pumps")
    >>> validator = Validator(pumps)
    >>> all(validator.validate(raw).reason == reason for reason, raw in bad_records(pumps))
    True
    >>> sorted({reason for reason, _ in bad_records(pumps)})[:4]
    ['duplicate_field', 'empty', 'invalid_json', 'invalid_key']
    >>> validator.validate(good_record(pumps)).pump_id
    'pump-001'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lakeless.examples import car_fleet
from lakeless.schema import FieldSpec, PipelineSchema
from lakeless.testing._samples import (
    DAY_MS,
    INT64_MAX,
    MAX_BYTES,
    MAX_FUTURE_MS,
    MIN_TS_MS,
    RECORDED_TS,
    declared,
    dump,
    good_event,
    good_record,
    good_string,
    json_object,
    json_token,
    schema_or_default,
    time_bounds,
    valid_string,
)

__all__ = ["bad_keyed_records", "bad_records", "edge_good_records", "good_event", "good_record"]

Item = tuple[str, bytes]


# ---- the generator ----------------------------------------------------------------------------


class _Corpus:
    """Records of one schema, built from one good event."""

    def __init__(self, schema: PipelineSchema) -> None:
        self.schema = schema
        self.event = good_event(schema)
        self.now: int = self.event[schema.time]
        self.good = dump(self.event)
        self.key_spec = schema.field(schema.key)
        self.key: str = self.event[schema.key]
        self.time_low, self.time_high = time_bounds(schema)
        features = schema.features
        floats = [f for f in features if f.type in ("float", "double")]
        self.number = (floats or [f for f in features if f.type != "boolean"] or list(features))[0]
        self.strings = [f for f in schema.fields if f.string and f.name != schema.key]
        self.optional = [f for f in schema.fields if f.has_default]
        self.required = [f for f in schema.fields if not f.has_default]
        # A field always there, to repeat or leave out: a required feature if there is one.
        required_features = [f for f in self.required if f.name in schema.feature_names]
        self.always = (required_features or self.required or [schema.field(schema.time)])[0]

    def record(self, **changes: Any) -> bytes:
        """The good event with fields replaced by values (any JSON-able value)."""
        return dump({**self.event, **changes})

    def tokens(self, changes: dict[str, bytes] | None = None, extra: Sequence[Item] = ()) -> bytes:
        """The good event with fields replaced by raw JSON tokens, and keys appended."""
        changes = changes or {}
        items = [(name, changes.get(name, json_token(value))) for name, value in self.event.items()]
        return json_object([*items, *extra])

    def without(self, *names: str) -> bytes:
        return dump({k: v for k, v in self.event.items() if k not in names})

    def unknown_name(self) -> str:
        name = "x_unknown_field"
        while name in self.schema:
            name += "_"
        return name

    def other_key(self) -> str | None:
        return good_string(self.key_spec, avoid=(self.key,))

    # ---- bad records, by reason -------------------------------------------------------------

    def bad(self) -> Iterator[Item]:
        yield from self.size_and_encoding()
        yield from self.syntax()
        yield from self.structure()
        yield from self.types()
        yield from self.numbers()
        yield from self.string_values()
        yield from self.event_time()

    def size_and_encoding(self) -> Iterator[Item]:
        key = self.schema.key
        yield "empty", b""
        yield "empty", b" \r\n\t"
        yield "too_large", self.good + b" " * MAX_BYTES  # valid JSON, only too large
        yield "too_large", self.good + b" " * (MAX_BYTES - len(self.good) + 1)  # one byte over
        yield "too_large", b"\xff" * (MAX_BYTES + 1)  # size comes first
        yield "not_utf8", self.tokens({key: b'"\xff\xfe' + self.key.encode() + b'"'})
        yield "not_utf8", self.tokens({key: b'"' + self.key.encode() + b'\xe9"'})  # Latin-1
        yield "not_utf8", self.tokens({key: b'"\xed\xa0\x80"'})  # a UTF-16 surrogate, raw
        yield "not_utf8", b"\xff\xfe{\x00}\x00"  # UTF-16 with a byte-order mark

    def syntax(self) -> Iterator[Item]:
        good, time_name = self.good, self.schema.time
        yield "invalid_json", b"hello"
        yield "invalid_json", good[: len(good) // 2]  # truncated
        yield "invalid_json", good[:-1]  # the closing brace missing
        yield "invalid_json", good + b"}"  # trailing bytes
        yield "invalid_json", good.replace(b'"', b"'")  # single quotes
        yield "invalid_json", b"\xef\xbb\xbf" + good  # UTF-8 byte-order mark
        yield "invalid_json", good[:-1] + b",}"  # trailing comma
        yield "invalid_json", self.tokens({time_name: b"0" + str(self.now).encode()})  # 01...
        yield "invalid_json", self.tokens({self.schema.key: b'"\\ud800"'})  # lone surrogate
        yield "invalid_json", self.tokens({self.number.name: b"[" * 101 + b"]" * 101})
        yield "not_an_object", b"[1,2,3]"
        yield "not_an_object", json_token(self.key)
        yield "not_an_object", b"42"
        yield "not_an_object", b"null"
        yield "not_an_object", b"true"
        yield "not_an_object", b"[" + good + b"]"  # an event wrapped in an array

    def structure(self) -> Iterator[Item]:
        schema, number, always = self.schema, self.number, self.always.name
        yield "missing_field", b"{}"
        for spec in self.required:
            yield "missing_field", self.without(spec.name)
        if self.optional and self.required:  # missing while every optional one is absent too
            yield "missing_field", self.without(always, *(f.name for f in self.optional))
        unknown = self.unknown_name()
        yield "unknown_field", self.tokens(extra=[(unknown, b"0.5")])
        yield "unknown_field", self.tokens(extra=[(unknown, json_token(self.key))])
        yield "unknown_field", self.tokens(extra=[(unknown, b'{"a":[1,{"b":null}]}')])
        for name in (number.name.upper(), number.name.capitalize()):  # keys are case-sensitive
            if name not in schema:
                yield (
                    "unknown_field",
                    self.tokens(extra=[(name, json_token(self.event[number.name]))]),
                )
        # duplicates: each kind of key, with the optional fields present and absent
        value = json_token(self.event[always])
        yield "duplicate_field", self.tokens(extra=[(always, value)])  # the same value again
        yield "duplicate_field", self.tokens(extra=[(schema.time, json_token(self.now))])
        if (other := self.other_key()) is not None:
            yield "duplicate_field", self.tokens(extra=[(schema.key, json_token(other))])
        for spec in self.optional:
            absent = [(k, json_token(v)) for k, v in self.event.items() if k != spec.name]
            yield "duplicate_field", json_object([*absent, (always, value)])
            yield (
                "duplicate_field",
                self.tokens(extra=[(spec.name, json_token(self.event[spec.name]))]),
            )
        if self.optional:
            required = [(f.name, json_token(self.event[f.name])) for f in self.required]
            yield "duplicate_field", json_object([*required, (always, value)])
        pretty = json.dumps(self.event, indent=1, ensure_ascii=False).encode()
        extra = b',\n "' + always.encode() + b'" : ' + value + b"\n}"
        yield "duplicate_field", pretty[:-2] + extra

    def types(self) -> Iterator[Item]:
        schema, number = self.schema, self.number
        good_number = self.event[number.name]
        yield "wrong_type", self.record(**{number.name: str(good_number)})
        yield "wrong_type", self.record(**{number.name: [good_number]})
        yield "wrong_type", self.record(**{number.name: {"value": good_number}})
        yield "wrong_type", self.record(**{number.name: None})
        if number.type != "boolean":
            yield "wrong_type", self.record(**{number.name: True})  # a bool is not a number
        for spec in schema.fields:
            if spec.integer:  # a float where an integer is required, even a whole one
                whole = float(self.event[spec.name])
                yield "wrong_type", self.record(**{spec.name: whole + 0.5})
                yield "wrong_type", self.record(**{spec.name: whole})
            elif spec.type == "boolean":
                yield "wrong_type", self.record(**{spec.name: 1})
                yield "wrong_type", self.record(**{spec.name: "true"})
            elif spec.string:
                yield "wrong_type", self.record(**{spec.name: 7})
                yield "wrong_type", self.record(**{spec.name: False})
                yield "wrong_type", self.record(**{spec.name: [self.event[spec.name]]})
                if not spec.nullable:
                    yield "wrong_type", self.record(**{spec.name: None})
        for spec in self.optional:
            if not spec.nullable:
                yield "wrong_type", self.record(**{spec.name: None})

    def numbers(self) -> Iterator[Item]:
        schema, number = self.schema, self.number
        for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"nan"):
            yield "not_finite", self.tokens({number.name: token})
        if number.type == "double":
            yield "not_finite", self.tokens({number.name: b"1" * 400})  # overflows float64
        for spec in schema.features:
            for bound, sign in (("max", 1), ("min", -1)):
                limit = getattr(spec, bound)
                if limit is None or spec.type == "boolean":
                    continue
                if spec.integer:
                    beyond: float = int(limit) + sign
                elif declared(schema, spec, bound):
                    beyond = limit + sign * max(1.0, abs(limit) * 1e-3)
                elif spec.type == "float":
                    beyond = sign * 1e39  # beyond float32
                else:
                    continue
                if math.isfinite(beyond):
                    yield "out_of_range", self.record(**{spec.name: beyond})
        yield "out_of_range", self.record(**{schema.time: -1})
        yield "out_of_range", self.record(**{schema.time: 2**63})
        yield "out_of_range", self.record(**{schema.time: 10**30})
        if schema.sequence is not None:
            spec = schema.field(schema.sequence)
            yield "out_of_range", self.record(**{spec.name: -1})
            top = INT64_MAX if spec.max is None else int(spec.max)
            yield "out_of_range", self.record(**{spec.name: top + 1})

    def string_values(self) -> Iterator[Item]:
        key = self.key_spec
        for text in self.invalid_strings(key):
            yield "invalid_key", self.record(**{key.name: text})
        for spec in self.strings:
            for text in self.invalid_strings(spec):
                yield "invalid_string", self.record(**{spec.name: text})

    def invalid_strings(self, spec: FieldSpec) -> Iterator[str]:
        """Values of the right type that break ``spec``'s rules, one rule each."""
        if spec.symbols is not None:
            for text in ("not_a_symbol", spec.symbols[0].upper(), spec.symbols[0] + " ", ""):
                if text not in spec.symbols:
                    yield text
            return
        seed = self.event.get(spec.name) or good_string(spec) or "a"
        limit = spec.max_length
        candidates = [
            "",
            seed + "x" * (limit + 1 - len(seed)) if len(seed) <= limit else seed,  # too long
            "é" * (limit // 2 + 1),  # within the limit in characters, over it in bytes
            "😀" * (limit // 4 + 1),
            seed + "/1",
            seed + " 1",
            seed + "\n",  # a trailing newline: `$` would accept it, the pattern must not
            "#",
        ]
        for text in candidates:
            size = len(text.encode())
            if size < MAX_BYTES - len(self.good) - 16 and not valid_string(spec, text):
                yield text

    def event_time(self) -> Iterator[Item]:
        name, now, low, high = self.schema.time, self.now, self.time_low, self.time_high
        # Hours ahead, not minutes: a corpus made when a long test session starts must still
        # be in the future when its last test runs.
        for ts in (now + DAY_MS, now + DAY_MS // 4, high):
            if now + MAX_FUTURE_MS < ts <= high:
                yield "ts_in_future", self.record(**{name: ts})
        for ts in (now // 1000, 0, 1, MIN_TS_MS - 1):  # seconds instead of milliseconds, ...
            if low <= ts < MIN_TS_MS:
                yield "ts_too_old", self.record(**{name: ts})

    # ---- keyed and good ---------------------------------------------------------------------

    def keyed(self) -> Iterator[tuple[str, bytes, bytes]]:
        key = self.key.encode()
        candidates = [b"", key.upper(), key + b"\n", key + b" ", b"\xff" + key]
        if (other := self.other_key()) is not None:
            candidates.insert(0, other.encode())
        for record_key in dict.fromkeys(candidates):
            if record_key != key:
                yield "key_mismatch", record_key, self.good

    def edge_good(self) -> Iterator[bytes]:
        schema, event = self.schema, self.event
        yield self.good
        yield self.without(*(f.name for f in self.optional))  # optional fields omitted
        yield json.dumps(event, indent=2, ensure_ascii=False).encode() + b"\n"  # pretty
        yield dump(dict(reversed(list(event.items()))))  # another field order
        yield self.good + b" " * (MAX_BYTES - len(self.good))  # exactly max_bytes
        for spec in schema.features:  # whole numbers as ints where floats are expected
            if spec.type in ("float", "double") and float(event[spec.name]).is_integer():
                yield self.record(**{spec.name: int(event[spec.name])})
            if spec.type == "boolean":
                yield self.record(**{spec.name: not event[spec.name]})
        edges: dict[str, dict[str, Any]] = {"min": {}, "max": {}}
        for spec in schema.features:
            for bound, values in edges.items():
                if declared(schema, spec, bound):
                    limit = getattr(spec, bound)
                    values[spec.name] = int(limit) if spec.integer else float(limit)
        for values in edges.values():
            if values:
                yield self.record(**values)  # every feature at its range's edge
        for ts in (RECORDED_TS, self.now + 60_000):  # recorded data; within the clock skew
            if self.time_low <= ts <= self.time_high:
                yield self.record(**{schema.time: ts})
        if schema.sequence is not None:
            spec = schema.field(schema.sequence)
            yield self.record(**{spec.name: INT64_MAX if spec.max is None else int(spec.max)})
        key = self.key_spec
        for text in (
            "fleet.eu:car_7-B",
            self.key[:1] * key.max_length,
            (self.key * key.max_length)[: key.max_length],
        ):
            if valid_string(key, text):
                yield self.record(**{key.name: text})
        escaped = b'"\\u' + f"{ord(self.key[0]):04x}".encode() + json_token(self.key[1:])[1:]
        yield self.tokens({key.name: escaped})  # a unicode escape in a string
        escaped_name = (
            b'"\\u' + f"{ord(schema.time[0]):04x}".encode() + json_token(schema.time[1:])[1:]
        )
        yield (
            b"{"
            + b",".join(  # a key written with an escape
                (escaped_name if name == schema.time else json_token(name))
                + b":"
                + json_token(value)
                for name, value in event.items()
            )
            + b"}"
        )
        for spec in self.strings:
            if spec.symbols is not None:
                for symbol in spec.symbols:
                    yield self.record(**{spec.name: symbol})
                if spec.nullable:
                    yield self.record(**{spec.name: None})
                continue
            if spec.nullable:
                yield self.record(**{spec.name: None})
            limit = spec.max_length
            for text in (
                "Électrique ⚡",  # non-ASCII within the limit in UTF-8 bytes
                "é" * (limit // 2),
                'quoted "text" \\ \t',  # escapes in a string
                "x" * limit,
                f"{spec.name}",  # a value that looks like a key
            ):
                if valid_string(spec, text) and len(text.encode()) < MAX_BYTES // 2:
                    yield self.record(**{spec.name: text})


# ---- the car fleet's hand-written cases ---------------------------------------------------------


def _car_bad(c: _Corpus) -> Iterator[Item]:
    good, now = c.good, c.now

    def replace(old: bytes, new: bytes) -> bytes:
        assert old in good, old
        return good.replace(old, new, 1)

    yield "not_utf8", replace(b"e-sedan", b"e-\xff\xfesedan")
    yield "not_utf8", replace(b"e-sedan", b"e-s\xe9dan")  # Latin-1
    yield "invalid_json", good[:-7]  # truncated
    yield "invalid_json", replace(b'"seq":0', b'"seq":01')  # leading zero
    yield "invalid_json", replace(b"e-sedan", b"e-\\ud800")  # lone surrogate
    yield "not_an_object", b'"car-1"'
    yield "missing_field", c.without("speed")
    yield "missing_field", c.without("car_id")
    yield "unknown_field", c.record(humidity=0.4)
    yield "unknown_field", replace(b"{", b'{"Speed":1.0,')  # keys are case-sensitive
    yield "duplicate_field", replace(b'"seq":0', b'"seq":0,"speed":99.0')
    yield "duplicate_field", replace(b'"seq":0', b'"seq":0,"failure":"flat_tire"')
    yield "duplicate_field", replace(b'"seq":0', b'"seq":0,"car_id":"car-2"')
    yield "wrong_type", c.record(speed="25.0")
    yield "wrong_type", c.record(speed=True)  # bool is not a number
    yield "wrong_type", c.record(seq=1.5)
    yield "wrong_type", c.record(seq=1.0)  # float where an integer is required
    yield "wrong_type", c.record(ts=float(now))
    yield "wrong_type", c.record(speed=None)
    yield "wrong_type", c.record(speed=[25.0])
    yield "wrong_type", c.record(car_id=7)
    yield "wrong_type", c.record(failure=5)  # failure label must be a string or null
    yield "wrong_type", c.record(failure=True)
    yield "wrong_type", c.record(model=None)  # model has a default, but is never null
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"nan"):
        yield "not_finite", replace(b'"speed":25.0', b'"speed":' + token)
    yield "out_of_range", c.record(speed=500.0)
    yield "out_of_range", c.record(throttle_pos=-0.1)
    yield "out_of_range", c.record(battery_percentage=100.5)
    yield "out_of_range", c.record(seq=-1)
    yield "out_of_range", c.record(seq=2**63)
    yield "out_of_range", c.record(ts=-1)
    yield "invalid_key", c.record(car_id="car/1")  # would break the MQTT topic
    yield "invalid_key", c.record(car_id="car 1")
    yield "invalid_key", c.record(car_id="")
    yield "invalid_key", c.record(car_id="c" * 65)
    yield "invalid_key", c.record(car_id="car-1\n")
    yield "invalid_string", c.record(model="")
    yield "invalid_string", c.record(failure="")
    yield "invalid_string", c.record(model="m" * 65)
    yield "invalid_string", c.record(model="😀" * 17)  # 17 characters, 68 UTF-8 bytes
    yield "ts_in_future", c.record(ts=now + DAY_MS)
    yield "ts_in_future", c.record(ts=2**63 - 1)
    yield "ts_too_old", c.record(ts=now // 1000)  # seconds instead of milliseconds
    yield "ts_too_old", c.record(ts=0)


def _car_edge_good(c: _Corpus) -> Iterator[bytes]:
    yield c.record(failure="flat_tire")
    yield c.record(speed=0, coolant_temp=90)  # ints where floats are expected
    yield c.record(speed=120.0, throttle_pos=1.0, current_draw=-1000.0)  # range edges
    yield c.record(car_id="fleet.eu:car_7-B")
    yield c.record(model="Électrique ⚡")  # non-ASCII within 64 UTF-8 bytes
    yield c.record(model='quoted "model"')  # escaped quotes in a string
    yield c.record(model="failure")  # a value named like an optional key
    yield c.without("model")  # the model defaults to "unknown"
    yield c.good.replace(b'"model":"e-sedan"', b'"model":"e-\\u0073edan"')
    yield c.good.replace(b'"failure":null', b'"f\\u0061ilure" : null')  # an escaped key


def _is_car(schema: PipelineSchema) -> bool:
    return schema == car_fleet()


def _unique(items: Iterable[Item]) -> list[Item]:
    seen: dict[bytes, str] = {}
    out = []
    for reason, raw in items:
        if raw in seen:
            if seen[raw] != reason:
                raise AssertionError(f"corpus bug: {raw[:80]!r} is both {seen[raw]} and {reason}")
            continue
        seen[raw] = reason
        out.append((reason, raw))
    return out


def bad_records(schema: PipelineSchema | None = None) -> list[tuple[str, bytes]]:
    """``(expected_reason, raw)`` pairs for ``schema``: several records for each reason.

    Only reasons that the value alone decides are here; see `bad_keyed_records`. No raw
    value appears twice.
    """
    corpus = _Corpus(schema_or_default(schema))
    cases = list(corpus.bad())
    if _is_car(corpus.schema):
        cases += _car_bad(corpus)
    return _unique(cases)


def bad_keyed_records(schema: PipelineSchema | None = None) -> list[tuple[str, bytes, bytes]]:
    """``(expected_reason, record_key, raw)`` for reasons that depend on the record key."""
    return list(_Corpus(schema_or_default(schema)).keyed())


def edge_good_records(schema: PipelineSchema | None = None) -> list[bytes]:
    """Unusual records of ``schema`` that the default validator must accept."""
    corpus = _Corpus(schema_or_default(schema))
    records = list(corpus.edge_good())
    if _is_car(corpus.schema):
        records += _car_edge_good(corpus)
    return list(dict.fromkeys(records))
