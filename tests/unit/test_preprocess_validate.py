"""Validation: every bad-input kind maps to its stable reason code; good records pass."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from lakeless.preprocess import Reason, Rejection, Validator
from lakeless.schema import SensorEvent, decode_clean, encode_clean
from lakeless.testing.corpus import bad_keyed_records, bad_records, edge_good_records, good_record

NOW = 1_760_000_000_000  # fixed wall clock for deterministic tests


def fixed_validator(**options: object) -> Validator:
    return Validator(clock=lambda: NOW / 1000, **options)  # type: ignore[arg-type]


CORPUS = bad_records()


def test_corpus_covers_every_reason_but_the_fallback() -> None:
    reasons = {reason for reason, _ in CORPUS} | {reason for reason, _, _ in bad_keyed_records()}
    assert reasons == {r.value for r in Reason} - {"schema_violation"}
    assert len(reasons) >= 15


@pytest.mark.parametrize(
    ("expected", "raw"), CORPUS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CORPUS)]
)
def test_bad_record_gets_its_reason(expected: str, raw: bytes) -> None:
    result = Validator().validate(raw)
    assert isinstance(result, Rejection), f"accepted: {raw[:120]!r}"
    assert result.reason == expected, result.detail
    assert result.detail


@pytest.mark.parametrize(("expected", "key", "raw"), bad_keyed_records())
def test_bad_keyed_record_gets_its_reason(expected: str, key: bytes, raw: bytes) -> None:
    result = Validator().validate(raw, key)
    assert isinstance(result, Rejection)
    assert result.reason == expected


@pytest.mark.parametrize("raw", edge_good_records())
def test_edge_good_records_pass(raw: bytes) -> None:
    result = Validator().validate(raw)
    assert isinstance(result, SensorEvent), result


def test_tombstone_is_empty() -> None:
    result = Validator().validate(None)
    assert isinstance(result, Rejection) and result.reason is Reason.EMPTY


def test_batch_keeps_order_and_alignment() -> None:
    values = [good_record(seq=1, ts=NOW), None, good_record(seq=2, ts=NOW), b"[]"]
    results = fixed_validator().validate_batch(values)
    assert [type(r).__name__ for r in results] == [
        "SensorEvent",
        "Rejection",
        "SensorEvent",
        "Rejection",
    ]
    assert [r.seq for r in results if isinstance(r, SensorEvent)] == [1, 2]


def test_good_event_round_trips_through_clean_encoding() -> None:
    event = fixed_validator().validate(good_record(car_id="car-9", seq=5, ts=NOW, failure="x"))
    assert isinstance(event, SensorEvent)
    assert decode_clean(encode_clean(event)) == event


def test_every_good_edge_record_encodes() -> None:
    for raw in edge_good_records():
        event = Validator().validate(raw)
        assert isinstance(event, SensorEvent)
        assert decode_clean(encode_clean(event)) == event


def test_reason_codes_are_stable() -> None:
    assert {r.value for r in Reason} == {
        "empty", "too_large", "not_utf8", "invalid_json", "not_an_object", "missing_field",
        "unknown_field", "duplicate_field", "wrong_type", "not_finite", "out_of_range",
        "invalid_car_id", "invalid_string", "ts_in_future", "ts_too_old", "key_mismatch",
        "schema_violation",
    }  # fmt: skip


def test_detail_names_field_and_value() -> None:
    result = Validator().validate(good_record(speed=500.0))
    assert isinstance(result, Rejection)
    assert result.field == "speed"
    assert "120" in result.detail and "500" in result.detail


def test_rejection_as_record_error() -> None:
    raw = b"[]"
    result = Validator().validate(raw)
    assert isinstance(result, Rejection)
    error = result.error(raw)
    assert (error.reason, error.raw) == ("not_an_object", raw)


# ---- size ------------------------------------------------------------------------------------


def test_size_limit_is_configurable() -> None:
    raw = good_record()
    assert isinstance(Validator(max_bytes=len(raw)).validate(raw), SensorEvent)
    result = Validator(max_bytes=len(raw) - 1).validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.TOO_LARGE


# ---- event time ------------------------------------------------------------------------------


def test_future_skew_against_wall_clock() -> None:
    validator = fixed_validator(max_future_ms=1000)
    assert isinstance(validator.validate(good_record(ts=NOW + 1000)), SensorEvent)
    result = validator.validate(good_record(ts=NOW + 1001))
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE


def test_future_skew_against_record_timestamp_is_replay_stable() -> None:
    validator = Validator(max_future_ms=1000)
    appended = NOW - 365 * 86_400_000  # the record was produced a year ago
    raw = good_record(ts=appended + 5000)
    result = validator.validate(raw, timestamp=appended)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE
    assert isinstance(validator.validate(raw, timestamp=appended + 4000), SensorEvent)


def test_record_timestamp_not_available_falls_back_to_wall_clock() -> None:
    validator = fixed_validator()
    assert isinstance(validator.validate(good_record(ts=NOW), timestamp=-1), SensorEvent)


def test_record_timestamp_ahead_of_wall_clock_does_not_widen_skew() -> None:
    validator = fixed_validator(max_future_ms=1000)
    result = validator.validate(good_record(ts=NOW + 50_000), timestamp=NOW + 100_000)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_IN_FUTURE


def test_max_age_is_off_by_default_so_2019_data_imports() -> None:
    raw = good_record(ts=1_546_300_800_000)
    assert isinstance(Validator().validate(raw), SensorEvent)


def test_max_age() -> None:
    validator = fixed_validator(max_age_ms=60_000)
    assert isinstance(validator.validate(good_record(ts=NOW - 60_000)), SensorEvent)
    result = validator.validate(good_record(ts=NOW - 60_001))
    assert isinstance(result, Rejection) and result.reason is Reason.TS_TOO_OLD
    # against the record timestamp: an old record replayed today still passes
    old = NOW - 400 * 86_400_000
    assert isinstance(validator.validate(good_record(ts=old), timestamp=old + 10), SensorEvent)


def test_min_ts_catches_seconds_and_can_be_disabled() -> None:
    raw = good_record(ts=NOW // 1000)
    result = fixed_validator().validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.TS_TOO_OLD
    assert "seconds" in result.detail
    assert isinstance(fixed_validator(min_ts_ms=None).validate(raw), SensorEvent)


def test_ts_beyond_int64_is_out_of_range_when_skew_is_off() -> None:
    validator = Validator(max_future_ms=None)
    assert isinstance(validator.validate(good_record(ts=2**63 - 1)), SensorEvent)
    for ts in (2**63, 10**30):
        result = validator.validate(good_record(ts=ts))
        assert isinstance(result, Rejection) and result.reason is Reason.OUT_OF_RANGE


# ---- keys ------------------------------------------------------------------------------------


def test_key_matching_car_id_passes_and_none_key_is_not_checked() -> None:
    raw = good_record(car_id="car-3")
    assert isinstance(Validator().validate(raw, b"car-3"), SensorEvent)
    assert isinstance(Validator().validate(raw, None), SensorEvent)


def test_keys_and_timestamps_must_align() -> None:
    with pytest.raises(ValueError):
        Validator().validate_batch([good_record()], keys=[])
    with pytest.raises(ValueError):
        Validator().validate_batch([good_record()], timestamps=[1, 2])


# ---- duplicates ------------------------------------------------------------------------------


def _with_extra(raw: bytes, extra: bytes) -> bytes:
    return raw.replace(b'"seq":0', b'"seq":0,' + extra, 1)


EXTRAS = [b'"speed":1.0', b'"seq":0', b'"model":"x"', b'"failure":null', b'"failure":"y"']
DUPLICATE_CASES = [
    (failure, extra)
    for failure in (None, "flat_tire", "omit")
    for extra in EXTRAS
    if not (failure == "omit" and extra.startswith(b'"failure"'))  # added once: no duplicate
]


@pytest.mark.parametrize(("failure", "extra"), DUPLICATE_CASES)
def test_duplicates_found_whatever_the_failure_field(failure: str | None, extra: bytes) -> None:
    event = json.loads(good_record(failure=failure if failure != "omit" else None))
    if failure == "omit":
        del event["failure"]
    raw = _with_extra(json.dumps(event, separators=(",", ":")).encode(), extra)
    assert msgspec.json.decode(raw)  # valid JSON; msgspec alone would accept it
    result = Validator().validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD, result


def test_duplicate_in_pretty_json_with_escapes() -> None:
    event = json.loads(good_record(model='say "hi"'))
    raw = json.dumps(event, indent=1).encode()
    assert isinstance(Validator().validate(raw), SensorEvent)
    raw = raw.replace(b'"seq": 0', b'"seq": 0, "speed" : 2.0', 1)
    result = Validator().validate(raw)
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD


def test_escaped_failure_key_is_not_a_duplicate() -> None:
    raw = good_record().replace(b'"failure":null', b'"f\\u0061ilure" : null')
    assert isinstance(Validator().validate(raw), SensorEvent)


def test_model_named_failure_is_not_confused_with_the_key() -> None:
    event = json.loads(good_record(model="failure"))
    del event["failure"]
    raw = json.dumps(event, separators=(",", ":")).encode()
    assert isinstance(Validator().validate(raw), SensorEvent)
    result = Validator().validate(_with_extra(raw, b'"speed":1.0'))
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD


@pytest.mark.parametrize("model", ["Électrique", "e-sedan"])
def test_duplicate_found_when_another_check_is_suspicious_too(model: str) -> None:
    raw = _with_extra(good_record(car_id="car-1", model=model), b'"speed":1.0')
    result = Validator().validate(raw, b"car-2")
    assert isinstance(result, Rejection) and result.reason is Reason.DUPLICATE_FIELD


def test_duplicate_check_can_be_disabled() -> None:
    raw = good_record()[:-1] + b',"speed":99.0}'
    event = Validator(check_duplicates=False).validate(raw)
    assert isinstance(event, SensorEvent) and event.speed == 99.0  # last one wins


# ---- msgspec behaviour we rely on --------------------------------------------------------------


def test_msgspec_type_strictness() -> None:
    v = Validator()
    assert isinstance(v.validate(good_record(speed=3)), SensorEvent)  # int for float: fine
    for field, value in [("speed", True), ("seq", False), ("seq", 2.0), ("ts", 1.7e12)]:
        event = json.loads(good_record())
        event[field] = value
        result = v.validate(json.dumps(event).encode())
        assert isinstance(result, Rejection) and result.reason is Reason.WRONG_TYPE, field


def test_validation_cost_per_good_record() -> None:
    now = int(time.time() * 1000)
    values = [good_record(car_id=f"car-{i % 50}", seq=i, ts=now) for i in range(10_000)]
    validator = Validator()
    best = min(_timed(validator.validate_batch, values) for _ in range(3))
    per_record_us = best / len(values) * 1e6
    assert per_record_us < 50, per_record_us  # generous: catches accidental slow paths only


def _timed(fn: object, values: list[bytes]) -> float:
    start = time.perf_counter()
    results = fn(values)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    assert all(isinstance(r, SensorEvent) for r in results)
    return elapsed
