"""A corpus of good and bad raw sensor records, shared by unit and integration tests.

Each bad record comes with the `lakeless.preprocess.Reason` code that the default
`lakeless.preprocess.Validator` must give it. Every record is plain bytes, so the same corpus
can be published over MQTT or produced to Kafka; `bad_keyed_records` adds the cases that need a
record key. Event times are relative to the wall clock at call time.

Example:
    >>> from lakeless.preprocess import Validator
    >>> validator = Validator()
    >>> all(validator.validate(raw).reason == reason for reason, raw in bad_records())
    True
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from lakeless.schema import EXAMPLE_READING

__all__ = ["bad_keyed_records", "bad_records", "edge_good_records", "good_record"]

_READING: Final = EXAMPLE_READING  # the schema's healthy example reading

_DAY_MS: Final = 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def good_event(
    car_id: str = "car-1",
    seq: int = 0,
    ts: int | None = None,
    model: str = "e-sedan",
    failure: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A valid event as a dict (``ts`` defaults to now); ``fields`` override sensor values."""
    event: dict[str, Any] = {
        "car_id": car_id,
        "ts": _now_ms() if ts is None else ts,
        "seq": seq,
        "model": model,
        **_READING,
        "failure": failure,
    }
    event.update(fields)
    return event


def good_record(
    car_id: str = "car-1",
    seq: int = 0,
    ts: int | None = None,
    model: str = "e-sedan",
    failure: str | None = None,
    **fields: Any,
) -> bytes:
    """A valid raw record (compact JSON, ``ts`` defaults to now); see `good_event`."""
    return _dump(good_event(car_id, seq, ts, model, failure, **fields))


def _dump(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _raw(**fields: Any) -> bytes:
    """A good record with ``fields`` replaced by anything, including the wrong types."""
    event = good_event()
    event.update(fields)
    return _dump(event)


def _without(name: str) -> bytes:
    event = good_event()
    del event[name]
    return _dump(event)


def _replace(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert old in raw, old
    return raw.replace(old, new, 1)


def edge_good_records() -> list[bytes]:
    """Unusual records that must still pass the default validator."""
    now = _now_ms()
    no_failure = good_event(ts=now)
    del no_failure["failure"]
    return [
        _dump(no_failure),  # optional field omitted
        good_record(failure="flat_tire"),
        good_record(speed=0, coolant_temp=90),  # ints where floats are expected
        good_record(speed=120.0, throttle_pos=1.0, current_draw=-1000.0),  # range edges
        good_record(ts=1_546_300_800_000),  # 2019-01-01: recorded data stays importable
        good_record(ts=now + 60_000),  # within the allowed clock skew
        good_record(car_id="fleet.eu:car_7-B"),
        good_record(model="Électrique ⚡"),  # non-ASCII within 64 UTF-8 bytes
        good_record(model='quoted "model"'),  # escaped quotes in a string
        good_record(seq=2**63 - 1),
        json.dumps(good_event(), indent=2).encode() + b"\n",  # pretty-printed, trailing newline
        _replace(good_record(), b'"model":"e-sedan"', b'"model":"e-\\u0073edan"'),
    ]


def bad_records() -> list[tuple[str, bytes]]:
    """``(expected_reason, raw)`` pairs: one or more records for each reason code.

    Only reasons that the value alone decides are here; see `bad_keyed_records`.
    """
    good = _raw()
    now = _now_ms()
    return [
        ("empty", b""),
        ("empty", b" \r\n\t"),
        ("too_large", good + b" " * (64 * 1024)),  # valid JSON, only too large
        ("not_utf8", _replace(good, b"e-sedan", b"e-\xff\xfesedan")),
        ("not_utf8", b"\xff\xfe{\x00}\x00"),  # UTF-16 with byte-order mark
        ("not_utf8", _replace(good, b"e-sedan", b"e-s\xe9dan")),  # Latin-1
        ("invalid_json", b"hello"),
        ("invalid_json", good[:-7]),  # truncated
        ("invalid_json", good + b"}"),  # trailing bytes
        ("invalid_json", good.replace(b'"', b"'")),  # single quotes
        ("invalid_json", b"\xef\xbb\xbf" + good),  # UTF-8 byte-order mark
        ("invalid_json", _replace(good, b'"seq":0', b'"seq":01')),  # leading zero
        ("invalid_json", _replace(good, b"e-sedan", b"e-\\ud800")),  # lone surrogate
        ("not_an_object", b"[1,2,3]"),
        ("not_an_object", b'"car-1"'),
        ("not_an_object", b"42"),
        ("not_an_object", b"null"),
        ("not_an_object", b"true"),
        ("not_an_object", b"[" + good + b"]"),  # an event wrapped in an array
        ("missing_field", _without("speed")),
        ("missing_field", _without("car_id")),
        ("missing_field", b"{}"),
        ("unknown_field", _raw(humidity=0.4)),
        ("unknown_field", _replace(good, b"{", b'{"Speed":1.0,')),  # keys are case-sensitive
        ("duplicate_field", _replace(good, b'"seq":0', b'"seq":0,"speed":99.0')),
        ("duplicate_field", _replace(good, b'"seq":0', b'"seq":0,"failure":"flat_tire"')),
        ("duplicate_field", _replace(good, b'"seq":0', b'"seq":0,"car_id":"car-2"')),
        ("wrong_type", _raw(speed="25.0")),
        ("wrong_type", _raw(speed=True)),  # bool is not a number
        ("wrong_type", _raw(seq=1.5)),
        ("wrong_type", _raw(seq=1.0)),  # float where an integer is required
        ("wrong_type", _raw(ts=float(now))),
        ("wrong_type", _raw(speed=None)),
        ("wrong_type", _raw(speed=[25.0])),
        ("wrong_type", _raw(car_id=7)),
        ("wrong_type", _raw(failure=5)),  # failure label must be a string or null
        ("wrong_type", _raw(failure=True)),
        ("not_finite", _replace(good, b'"speed":25.0', b'"speed":NaN')),
        ("not_finite", _replace(good, b'"speed":25.0', b'"speed":Infinity')),
        ("not_finite", _replace(good, b'"speed":25.0', b'"speed":-Infinity')),
        ("not_finite", _replace(good, b'"speed":25.0', b'"speed":1e999')),
        ("not_finite", _replace(good, b'"speed":25.0', b'"speed":nan')),
        ("out_of_range", _raw(speed=500.0)),
        ("out_of_range", _raw(throttle_pos=-0.1)),
        ("out_of_range", _raw(battery_percentage=100.5)),
        ("out_of_range", _raw(seq=-1)),
        ("out_of_range", _raw(seq=2**63)),
        ("out_of_range", _raw(ts=-1)),
        ("invalid_car_id", _raw(car_id="car/1")),  # would break the MQTT topic
        ("invalid_car_id", _raw(car_id="car 1")),
        ("invalid_car_id", _raw(car_id="")),
        ("invalid_car_id", _raw(car_id="c" * 65)),
        ("invalid_car_id", _raw(car_id="car-1\n")),
        ("invalid_string", _raw(model="")),
        ("invalid_string", _raw(failure="")),
        ("invalid_string", _raw(model="m" * 65)),
        ("invalid_string", _raw(model="😀" * 17)),  # 17 characters, 68 UTF-8 bytes
        ("ts_in_future", _raw(ts=now + _DAY_MS)),
        ("ts_in_future", _raw(ts=2**63 - 1)),
        ("ts_too_old", _raw(ts=now // 1000)),  # seconds instead of milliseconds
        ("ts_too_old", _raw(ts=0)),
    ]


def bad_keyed_records() -> list[tuple[str, bytes, bytes]]:
    """``(expected_reason, key, raw)`` for reasons that depend on the record key."""
    return [
        ("key_mismatch", b"car-2", good_record(car_id="car-1")),
        ("key_mismatch", b"", good_record(car_id="car-1")),
        ("key_mismatch", b"CAR-1", good_record(car_id="car-1")),
    ]
