"""Validation: each bad input gets its stable reason code, for any schema; good records pass."""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec
import pytest

from lakeless.examples import car_fleet, example_schema
from lakeless.preprocess import Reason, Rejection, Validator
from lakeless.schema import PipelineSchema, load_schema
from lakeless.testing.corpus import (
    bad_keyed_records,
    bad_records,
    edge_good_records,
    good_event,
    good_record,
)
from lakeless.testing.events import decode_clean, encode_clean

NOW = 1_760_000_000_000  # fixed wall clock for deterministic tests
CAR = car_fleet()
PUMPS = example_schema("pumps")
#: A third shape, known only here: an int sequence, a required nullable context, a Python
#: keyword as a field name, a boolean and an unbounded double feature, a required enum label,
#: optional fields of every kind, a key pattern of its own.
METERS = load_schema(
    {
        "type": "record",
        "name": "MeterReading",
        "namespace": "test.meters",
        "lakeless": {
            "key": "meter",
            "time": "at",
            "sequence": "n",
            "label": "tamper",
            "context": ["region", "class"],
        },
        "fields": [
            {"name": "at", "type": "long"},
            {"name": "meter", "type": "string", "pattern": "M[0-9]{3,8}", "maxLength": 9},
            {"name": "n", "type": "int"},
            {"name": "class", "type": "string", "default": "residential", "pattern": "[a-z]+"},
            {"name": "region", "type": ["null", "string"], "maxLength": 8},
            {"name": "kwh", "type": "double"},
            {"name": "temp_c", "type": "float", "unit": "degC", "min": -40, "max": 85},
            {"name": "relay_closed", "type": "boolean", "default": True},
            {"name": "pulses", "type": "long", "default": 0, "min": 0},
            {"name": "note", "type": "string", "default": "", "minLength": 0, "maxLength": 200},
            {
                "name": "tamper",
                "type": {"type": "enum", "name": "Tamper", "symbols": ["none", "magnet"]},
            },
        ],
    }
)
SCHEMAS = {"car": CAR, "pumps": PUMPS, "meters": METERS}
#: Reasons about one field: the rejection names it.
FIELD_REASONS = {
    "missing_field", "unknown_field", "duplicate_field", "wrong_type", "not_finite",
    "out_of_range", "invalid_key", "invalid_string", "ts_in_future", "ts_too_old", "key_mismatch",
}  # fmt: skip


def fixed_validator(schema: PipelineSchema = CAR, **options: Any) -> Validator:
    return Validator(schema, clock=lambda: NOW / 1000, **options)


def car(**fields: Any) -> bytes:
    """A good car record at NOW with ``fields`` replaced."""
    return good_record(CAR, **{"ts": NOW, **fields})


def verdict(result: Any) -> tuple[str, str | None] | str:
    return (result.reason.value, result.field) if isinstance(result, Rejection) else "accepted"


def assert_round_trip(schema: PipelineSchema, event: Any) -> None:
    """The event survives the clean layout: every number and string the layout keeps."""
    batch = decode_clean([encode_clean(event, schema)], schema)
    for name in batch.numeric.dtype.names or ():
        assert batch.numeric[name][0] == getattr(event, name), name
    assert batch.strings == {name: [getattr(event, name)] for name in schema.strings}


# ---- the generated corpus, for three schemas ---------------------------------------------------

CORPUS = [
    pytest.param(schema, reason, raw, id=f"{name}-{reason}-{i}")
    for name, schema in SCHEMAS.items()
    for i, (reason, raw) in enumerate(bad_records(schema))
]


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_corpus_covers_every_reason_but_the_fallback(schema: PipelineSchema) -> None:
    bad = bad_records(schema)
    reasons = {reason for reason, _ in bad} | {r for r, _, _ in bad_keyed_records(schema)}
    assert reasons == {r.value for r in Reason} - {"schema_violation"}
    assert len({raw for _, raw in bad}) == len(bad)  # a value identifies its expected reason
    for reason in reasons - {"key_mismatch"}:
        assert sum(r == reason for r, _ in bad) >= 2, reason  # several inputs per reason


@pytest.mark.parametrize(("schema", "expected", "raw"), CORPUS)
def test_bad_record_gets_its_reason(schema: PipelineSchema, expected: str, raw: bytes) -> None:
    result = Validator(schema).validate(raw)
    assert isinstance(result, Rejection), f"accepted: {raw[:120]!r}"
    assert result.reason == expected, (result.detail, raw[:160])
    assert result.detail
    if expected in FIELD_REASONS:
        assert result.field, result
    if expected == "invalid_key":
        assert result.field == schema.key


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_verdicts_do_not_depend_on_the_batch(schema: PipelineSchema) -> None:
    bad = bad_records(schema)
    edge = edge_good_records(schema)
    values = [raw for _, raw in bad] + edge
    validator = Validator(schema)
    together = validator.validate_batch(values)
    assert [verdict(r) for r in together] == [verdict(validator.validate(v)) for v in values]
    assert [r.reason.value for r in together[: len(bad)]] == [reason for reason, _ in bad]


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_bad_keyed_record_gets_its_reason(schema: PipelineSchema) -> None:
    cases = bad_keyed_records(schema)
    assert len(cases) >= 3
    validator = Validator(schema)
    for expected, key, raw in cases:
        result = validator.validate(raw, key)
        assert isinstance(result, Rejection), key
        assert (result.reason, result.field) == (expected, schema.key)
        assert not isinstance(validator.validate(raw), Rejection)  # only the key is wrong


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_edge_good_records_pass_and_encode(schema: PipelineSchema) -> None:
    records = edge_good_records(schema)
    assert len(records) >= 10
    validator = Validator(schema)
    for raw in records:
        event = validator.validate(raw)
        assert not isinstance(event, Rejection), (event, raw[:160])
        assert_round_trip(schema, event)


def test_tombstone_is_empty() -> None:
    result = Validator(CAR).validate(None)
    assert isinstance(result, Rejection) and result.reason is Reason.EMPTY


def test_batch_keeps_order_and_alignment() -> None:
    values = [car(seq=1), None, car(seq=2), b"[]"]
    results = fixed_validator().validate_batch(values)
    assert [isinstance(r, Rejection) for r in results] == [False, True, False, True]
    assert [r.seq for r in results if not isinstance(r, Rejection)] == [1, 2]


def test_good_event_round_trips_through_clean_encoding() -> None:
    event = fixed_validator().validate(car(car_id="car-9", seq=5, failure="x"))
    assert not isinstance(event, Rejection)
    assert (event.car_id, event.seq, event.failure, event.model) == ("car-9", 5, "x", "e-sedan")
    assert_round_trip(CAR, event)


def test_reason_codes_are_stable() -> None:
    assert {r.value for r in Reason} == {
        "empty", "too_large", "not_utf8", "invalid_json", "not_an_object", "missing_field",
        "unknown_field", "duplicate_field", "wrong_type", "not_finite", "out_of_range",
        "invalid_key", "invalid_string", "ts_in_future", "ts_too_old", "key_mismatch",
        "schema_violation",
    }  # fmt: skip


def test_detail_names_field_value_unit_and_range() -> None:
    result = Validator(CAR).validate(car(speed=500.0))
    assert isinstance(result, Rejection)
    assert result.field == "speed"
    assert "500" in result.detail and "m/s" in result.detail and "[0, 120]" in result.detail


def test_rejection_as_record_error() -> None:
    raw = b"[]"
    result = Validator(CAR).validate(raw)
    assert isinstance(result, Rejection)
    error = result.error(raw)
    assert (error.reason, error.raw) == ("not_an_object", raw)


def test_options_are_checked() -> None:
    for options in ({"max_bytes": 0}, {"max_future_ms": -1}, {"max_age_ms": -1}):
        with pytest.raises(ValueError):
            Validator(CAR, **options)  # type: ignore[arg-type]


# ---- size ------------------------------------------------------------------------------------


def test_size_limit_is_configurable() -> None:
    raw = car()
    assert not isinstance(fixed_validator(max_bytes=len(raw)).validate(raw), Rejection)
    result = fixed_validator(max_bytes=len(raw) - 1).validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.TOO_LARGE


# ---- event time ------------------------------------------------------------------------------


def test_future_skew_against_wall_clock() -> None:
    validator = fixed_validator(max_future_ms=1000)
    assert not isinstance(validator.validate(car(ts=NOW + 1000)), Rejection)
    result = validator.validate(car(ts=NOW + 1001))
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE


def test_future_skew_against_record_timestamp_is_replay_stable() -> None:
    validator = Validator(CAR, max_future_ms=1000)
    appended = NOW - 365 * 86_400_000  # the record was produced a year ago
    raw = car(ts=appended + 5000)
    result = validator.validate(raw, timestamp=appended)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE
    assert not isinstance(validator.validate(raw, timestamp=appended + 4000), Rejection)


def test_record_timestamp_not_available_falls_back_to_wall_clock() -> None:
    validator = fixed_validator()
    assert not isinstance(validator.validate(car(ts=NOW), timestamp=-1), Rejection)
    result = validator.validate(car(ts=NOW + 86_400_000), timestamp=-1)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE


def test_record_timestamp_ahead_of_wall_clock_does_not_widen_skew() -> None:
    validator = fixed_validator(max_future_ms=1000)
    result = validator.validate(car(ts=NOW + 50_000), timestamp=NOW + 100_000)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE


def test_max_age_is_off_by_default_so_2019_data_imports() -> None:
    assert not isinstance(fixed_validator().validate(car(ts=1_546_300_800_000)), Rejection)


def test_max_age() -> None:
    validator = fixed_validator(max_age_ms=60_000)
    assert not isinstance(validator.validate(car(ts=NOW - 60_000)), Rejection)
    result = validator.validate(car(ts=NOW - 60_001))
    assert isinstance(result, Rejection) and result.reason is Reason.TS_TOO_OLD
    assert "60000 ms" in result.detail
    # against the record timestamp: an old record replayed today still passes
    old = NOW - 400 * 86_400_000
    assert not isinstance(validator.validate(car(ts=old), timestamp=old + 10), Rejection)


def test_min_ts_catches_seconds_and_can_be_disabled() -> None:
    raw = car(ts=NOW // 1000)
    result = fixed_validator().validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_TOO_OLD
    assert "seconds" in result.detail
    assert not isinstance(fixed_validator(min_ts_ms=None).validate(raw), Rejection)


def test_ts_beyond_int64_is_out_of_range_when_skew_is_off() -> None:
    validator = fixed_validator(max_future_ms=None)
    assert not isinstance(validator.validate(car(ts=2**63 - 1)), Rejection)
    for ts in (2**63, 10**30):
        result = validator.validate(car(ts=ts))
        assert isinstance(result, Rejection) and result.reason is Reason.OUT_OF_RANGE


# ---- keys ------------------------------------------------------------------------------------


def test_key_matching_the_key_field_passes_and_none_key_is_not_checked() -> None:
    raw = car(car_id="car-3")
    assert not isinstance(fixed_validator().validate(raw, b"car-3"), Rejection)
    assert not isinstance(fixed_validator().validate(raw, None), Rejection)
    pumps = good_record(PUMPS, pump_id="p-7")
    assert not isinstance(Validator(PUMPS).validate(pumps, b"p-7"), Rejection)
    result = Validator(PUMPS).validate(pumps, b"p-8")
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (Reason.KEY_MISMATCH, "pump_id")


def test_keys_and_timestamps_must_align() -> None:
    with pytest.raises(ValueError):
        Validator(CAR).validate_batch([car()], keys=[])
    with pytest.raises(ValueError):
        Validator(CAR).validate_batch([car()], timestamps=[1, 2])


# ---- duplicates ------------------------------------------------------------------------------


def _with_extra(raw: bytes, extra: bytes) -> bytes:
    assert b'"seq":0' in raw
    return raw.replace(b'"seq":0', b'"seq":0,' + extra, 1)


EXTRAS = [b'"speed":1.0', b'"seq":0', b'"model":"x"', b'"failure":null', b'"failure":"y"']
DUPLICATE_CASES = [
    (failure, model, extra)
    for failure in (None, "flat_tire", "omit")
    for model in ("e-sedan", "unknown", "omit")  # "unknown" is the default, "omit" leaves it out
    for extra in EXTRAS
    # a field added once, where it was left out, is no duplicate
    if not (failure == "omit" and extra.startswith(b'"failure"'))
    and not (model == "omit" and extra.startswith(b'"model"'))
]


@pytest.mark.parametrize(("failure", "model", "extra"), DUPLICATE_CASES)
def test_duplicates_found_whatever_the_optional_fields(
    failure: str | None, model: str, extra: bytes
) -> None:
    event = good_event(CAR, ts=NOW, failure=None if failure == "omit" else failure, model=model)
    for name, value in (("failure", failure), ("model", model)):
        if value == "omit":
            del event[name]
    raw = json.dumps(event, separators=(",", ":")).encode()
    assert not isinstance(fixed_validator().validate(raw), Rejection)
    raw = _with_extra(raw, extra)
    assert msgspec.json.decode(raw)  # valid JSON; msgspec alone would accept it
    result = fixed_validator().validate(raw)
    assert isinstance(result, Rejection), raw
    assert (result.reason, result.field) == (
        Reason.DUPLICATE_FIELD,
        extra[1:].split(b'"')[0].decode(),
    )


def test_duplicate_in_pretty_json_with_escapes() -> None:
    event = good_event(CAR, ts=NOW, model='say "hi"')
    raw = json.dumps(event, indent=1).encode()
    assert not isinstance(fixed_validator().validate(raw), Rejection)
    raw = raw.replace(b'"seq": 0', b'"seq": 0, "speed" : 2.0', 1)
    result = fixed_validator().validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD


def test_escaped_key_is_not_a_duplicate_but_an_escaped_duplicate_is() -> None:
    raw = car().replace(b'"failure":null', b'"f\\u0061ilure" : null')
    assert not isinstance(fixed_validator().validate(raw), Rejection)
    raw = car()[:-1] + b',"sp\\u0065ed":1.0}'
    result = fixed_validator().validate(raw)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (Reason.DUPLICATE_FIELD, "speed")


def test_model_named_failure_is_not_confused_with_the_key() -> None:
    event = good_event(CAR, ts=NOW, model="failure")
    del event["failure"]
    raw = json.dumps(event, separators=(",", ":")).encode()
    assert not isinstance(fixed_validator().validate(raw), Rejection)
    result = fixed_validator().validate(_with_extra(raw, b'"speed":1.0'))
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD


@pytest.mark.parametrize("model", ["Électrique", "e-sedan"])
def test_duplicate_found_when_another_check_is_suspicious_too(model: str) -> None:
    raw = _with_extra(car(car_id="car-1", model=model), b'"speed":1.0')
    result = fixed_validator().validate(raw, b"car-2")
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD


def test_a_repeated_key_inside_a_nested_value_is_a_wrong_type_not_a_duplicate() -> None:
    raw = car().replace(b'"speed":25.0', b'"speed":{"a":1,"a":2}')
    result = fixed_validator().validate(raw)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (Reason.WRONG_TYPE, "speed")


def test_duplicate_check_can_be_disabled() -> None:
    raw = car()[:-1] + b',"speed":99.0}'
    event = fixed_validator(check_duplicates=False).validate(raw)
    assert not isinstance(event, Rejection) and event.speed == 99.0  # last one wins


# ---- the classification is structural: pinned over several inputs per reason ---------------


def pumps(**fields: Any) -> bytes:
    return good_record(PUMPS, **{"timestamp": NOW, **fields})


def meters(**fields: Any) -> bytes:
    return good_record(METERS, **{"at": NOW, **fields})


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


PINNED = [
    # nested and odd JSON
    (CAR, car().replace(b'"speed":25.0', b'"speed":{}'), "wrong_type", "speed"),
    (CAR, car().replace(b'"speed":25.0', b'"speed":[[1.0]]'), "wrong_type", "speed"),
    (
        CAR,
        car().replace(b'"speed":25.0', b'"speed":' + _deep(99)),
        "wrong_type",
        "speed",
    ),  # 100 levels
    (CAR, car().replace(b'"speed":25.0', b'"speed":' + _deep(100)), "invalid_json", None),  # 101
    (CAR, car().replace(b'"speed":25.0', b'"speed":' + _deep(5000)), "invalid_json", None),
    (CAR, b'{"a":' + _deep(2000) + b"}", "invalid_json", None),
    (CAR, _deep(3000), "invalid_json", None),
    (CAR, b"[" + car() + b"]", "not_an_object", None),
    (CAR, car()[:-1] + b',"zz":{"a":[1,{"b":null}]}}', "unknown_field", "zz"),
    (CAR, car().replace(b'"speed":25.0', b'"speed":{"x":NaN}'), "not_finite", "speed"),
    (CAR, car().replace(b'"speed":25.0', b'"speed":[1,Infinity]'), "not_finite", "speed"),
    (CAR, car().replace(b'"car_id":"car-1"', b'"car_id":{"id":"car-1"}'), "wrong_type", "car_id"),
    (CAR, car()[:-1] + b",}", "invalid_json", None),
    (CAR, car().replace(b'"seq":0', b'"seq":0 , '), "invalid_json", None),
    (CAR, b" \n" + car() + b"\n ", "accepted", None),
    # duplicate keys, optional fields present or absent
    (CAR, car()[:-1] + b',"failure":"x"}', "duplicate_field", "failure"),
    (CAR, car(model="unknown")[:-1] + b',"model":"unknown"}', "duplicate_field", "model"),
    (PUMPS, pumps()[:-1] + b',"fault":null}', "duplicate_field", "fault"),
    (
        PUMPS,
        pumps().replace(b',"fault":null', b"")[:-1] + b',"site":"b"}',
        "duplicate_field",
        "site",
    ),
    (METERS, meters()[:-1] + b',"relay_closed":true}', "duplicate_field", "relay_closed"),
    (METERS, meters().replace(b',"pulses":0', b"")[:-1] + b',"kwh":1}', "duplicate_field", "kwh"),
    # non-ASCII strings against limits in UTF-8 bytes
    (CAR, car(model="é" * 32), "accepted", None),  # 32 characters, 64 bytes
    (CAR, car(model="é" * 32 + "e"), "invalid_string", "model"),  # 33 characters, 65 bytes
    (CAR, car(failure="€" * 22), "invalid_string", "failure"),  # 22 characters, 66 bytes
    (CAR, car(model="e\\u00e9"), "accepted", None),
    (CAR, car().replace(b'"e-sedan"', b'"' + b"\\u00e9" * 33 + b'"'), "invalid_string", "model"),
    (PUMPS, pumps(site="Zürich-Nord"), "accepted", None),
    (PUMPS, pumps(site="ü" * 17), "invalid_string", "site"),  # 34 bytes, the limit is 32
    (PUMPS, pumps(pump_id="pümp"), "invalid_key", "pump_id"),
    (METERS, meters(note="ä" * 100), "accepted", None),  # exactly 200 bytes
    (METERS, meters(note="ä" * 101), "invalid_string", "note"),
    # enum symbols
    (PUMPS, pumps(pump_type="booster"), "accepted", None),
    (PUMPS, pumps(pump_type="Booster"), "invalid_string", "pump_type"),
    (PUMPS, pumps(pump_type=""), "invalid_string", "pump_type"),
    (PUMPS, pumps(pump_type=1), "wrong_type", "pump_type"),
    (PUMPS, pumps(fault="seal_leak"), "accepted", None),
    (PUMPS, pumps(fault="leak"), "invalid_string", "fault"),
    (METERS, meters(tamper="magnet"), "accepted", None),
    (METERS, meters(tamper=None), "wrong_type", "tamper"),  # a required enum, not nullable
    # ints and floats
    (CAR, car(speed=3), "accepted", None),  # an int where a float is expected
    (CAR, car(seq=2.0), "wrong_type", "seq"),
    (CAR, car().replace(b'"seq":0', b'"seq":1e2'), "wrong_type", "seq"),
    (CAR, car().replace(b'"seq":0', b'"seq":-0'), "accepted", None),
    (PUMPS, pumps(speed_rpm=2950.0), "wrong_type", "speed_rpm"),
    (PUMPS, pumps(speed_rpm=2**31), "out_of_range", "speed_rpm"),
    (PUMPS, pumps(motor_current=400), "accepted", None),
    (PUMPS, pumps(motor_current=400.5), "out_of_range", "motor_current"),
    (METERS, meters(kwh=10**300), "accepted", None),  # a big int fits a double
    (METERS, meters().replace(b'"kwh":0.5', b'"kwh":' + b"9" * 400), "not_finite", "kwh"),
    (METERS, meters(temp_c=1e39), "out_of_range", "temp_c"),
    (METERS, meters(n=2**31), "out_of_range", "n"),
    (METERS, meters(pulses=-1), "out_of_range", "pulses"),
    (CAR, car(control_unit_firmware=2**64), "out_of_range", "control_unit_firmware"),
    # booleans
    (METERS, meters(relay_closed=False), "accepted", None),
    (METERS, meters(relay_closed=1), "wrong_type", "relay_closed"),
    (METERS, meters(relay_closed=None), "wrong_type", "relay_closed"),
    (CAR, car(speed=False), "wrong_type", "speed"),
    # nullable label and context
    (CAR, car(failure=None), "accepted", None),
    (CAR, car().replace(b',"failure":null', b""), "accepted", None),
    (PUMPS, pumps(fault=None), "accepted", None),
    (METERS, meters(region=None), "accepted", None),
    (METERS, meters().replace(b'"region":"a",', b""), "missing_field", "region"),  # no default
    (CAR, car(model=None), "wrong_type", "model"),  # a default does not make it nullable
    # keys and patterns
    (CAR, car(car_id="car-1\n"), "invalid_key", "car_id"),
    (METERS, meters(meter="M12"), "invalid_key", "meter"),
    (METERS, meters(meter="M0001\n"), "invalid_key", "meter"),
    (METERS, meters(**{"class": "Big"}), "invalid_string", "class"),  # a keyword as a name
    (METERS, meters(**{"class": "commercial"}), "accepted", None),
]


@pytest.mark.parametrize(("schema", "raw", "reason", "field"), PINNED)
def test_pinned_verdicts(
    schema: PipelineSchema, raw: bytes, reason: str, field: str | None
) -> None:
    result = fixed_validator(schema).validate(raw)
    expected = "accepted" if reason == "accepted" else (reason, field)
    assert verdict(result) == expected, (getattr(result, "detail", ""), raw[:200])


def test_verdicts_do_not_depend_on_the_callers_stack() -> None:
    nested = car().replace(b'"speed":25.0', b'"speed":' + _deep(99))
    too_deep = car().replace(b'"speed":25.0', b'"speed":' + _deep(100))

    def at_depth(depth: int) -> list[Any]:
        if depth:
            return at_depth(depth - 1)
        return [verdict(fixed_validator().validate(raw)) for raw in (nested, too_deep)]

    expected = [("wrong_type", "speed"), ("invalid_json", None)]
    assert at_depth(0) == expected
    assert at_depth(sys.getrecursionlimit() - 150) == expected


def test_integers_and_whole_floats_per_type() -> None:
    validator = fixed_validator()
    assert not isinstance(validator.validate(car(speed=3)), Rejection)  # int for float: fine
    for field, value in [("speed", True), ("seq", False), ("seq", 2.0), ("ts", 1.7e12)]:
        result = validator.validate(car(**{field: value}))
        assert isinstance(result, Rejection) and result.reason is Reason.WRONG_TYPE, field
