"""Dead-letter records, stats balance, the validate-filter-encode core and the step (no broker)."""

from __future__ import annotations

import json

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, Message

from lakeless.config import Settings
from lakeless.examples import car_fleet, example_schema
from lakeless.pipeline import Pipeline
from lakeless.preprocess import (
    FILTERED,
    Preprocessor,
    PreprocessSettings,
    PreprocessStats,
    PreprocessStep,
    Reason,
    Rejection,
    Validator,
    dead_letter,
    dead_letter_headers,
    read_dead_letter,
)
from lakeless.schema import PipelineSchema
from lakeless.testing.corpus import bad_keyed_records, bad_records, edge_good_records, good_record
from lakeless.testing.events import decode_clean

REJECTION = Rejection(Reason.OUT_OF_RANGE, "speed: 500.0 m/s is outside [0, 120]", "speed")
CAR = car_fleet()
PUMPS = example_schema("pumps")


def test_dead_letter_headers() -> None:
    headers = dead_letter_headers(
        REJECTION, topic="sensor-raw", partition=3, offset=1234, timestamp=1_700_000_000_000
    )
    assert headers == [
        ("lakeless.reason", b"out_of_range"),
        ("lakeless.detail", b"speed: 500.0 m/s is outside [0, 120]"),
        ("lakeless.field", b"speed"),
        ("lakeless.source.topic", b"sensor-raw"),
        ("lakeless.source.partition", b"3"),
        ("lakeless.source.offset", b"1234"),
        ("lakeless.source.timestamp", b"1700000000000"),
    ]
    assert all(isinstance(value, bytes) for _, value in headers)


def test_unavailable_timestamp_and_field_are_left_out() -> None:
    headers = dead_letter_headers(
        Rejection(Reason.EMPTY, "tombstone"), topic="t", partition=0, offset=0, timestamp=-1
    )
    names = [name for name, _ in headers]
    assert "lakeless.source.timestamp" not in names and "lakeless.field" not in names


def test_dead_letter_keeps_value_key_and_headers() -> None:
    raw = b"\xff\xfe not json at all \x00"
    original = [("traceparent", b"00-abc"), ("empty", None)]
    letter = dead_letter(
        Rejection(Reason.NOT_UTF8, "bad"),
        value=raw,
        key=b"car-1",
        headers=original,
        topic="sensor-raw",
        partition=1,
        offset=7,
        timestamp=5,
    )
    assert letter.value is raw
    assert letter.key == b"car-1"
    assert letter.headers[:2] == original
    assert read_dead_letter(letter.headers) == {
        "lakeless.reason": "not_utf8",
        "lakeless.detail": "bad",
        "lakeless.source.topic": "sensor-raw",
        "lakeless.source.partition": "1",
        "lakeless.source.offset": "7",
        "lakeless.source.timestamp": "5",
    }


def test_dead_lettered_twice_last_verdict_wins() -> None:
    first = dead_letter(
        Rejection(Reason.EMPTY, "a"), value=None, key=None, topic="raw", partition=0, offset=1,
        timestamp=None,
    )  # fmt: skip
    second = dead_letter(
        Rejection(Reason.TOO_LARGE, "b"), value=None, key=None, topic="replay", partition=2,
        offset=9, timestamp=None, headers=first.headers,
    )  # fmt: skip
    info = read_dead_letter(second.headers)
    assert info["lakeless.reason"] == "too_large"
    assert info["lakeless.source.topic"] == "replay"


def test_long_detail_is_truncated() -> None:
    headers = dead_letter_headers(
        Rejection(Reason.INVALID_JSON, "x" * 5000), topic="t", partition=0, offset=0, timestamp=0
    )
    assert len(dict(headers)["lakeless.detail"]) <= 1000  # type: ignore[arg-type]


def test_stats_balance_and_json() -> None:
    stats = PreprocessStats()
    assert stats.balanced
    stats.received = 5
    stats.clean = 2
    stats.filtered = 1
    assert not stats.balanced
    stats.count_rejection("empty")
    stats.count_rejection("out_of_range")
    assert stats.balanced and stats.dlq == 2
    counts = json.loads(stats.to_json())
    assert {k: counts[k] for k in ("in", "clean", "dead_lettered", "filtered", "balanced")} == {
        "in": 5,
        "clean": 2,
        "dead_lettered": 2,
        "filtered": 1,
        "balanced": True,
    }
    assert counts["dlq_by_reason"] == {"empty": 1, "out_of_range": 1}
    other = PreprocessStats(received=2, clean=1)
    other.count_rejection("empty")
    stats.merge(other)
    assert stats.received == 7 and stats.balanced
    assert stats.to_dict()["dlq_by_reason"] == {"empty": 2, "out_of_range": 1}


def _every_kind(schema: PipelineSchema) -> tuple[list[bytes | None], list[bytes | None]]:
    """Values and keys: the bad corpus, the keyed cases, good records, a tombstone."""
    bad = bad_records(schema)
    keyed = bad_keyed_records(schema)
    good = [good_record(schema) for _ in range(3)] + edge_good_records(schema)
    values = [raw for _, raw in bad] + [raw for _, _, raw in keyed] + good + [None]
    keys = [None] * len(bad) + [key for _, key, _ in keyed] + [None] * (len(good) + 1)
    return values, keys


def test_preprocessor_counts_every_record_once() -> None:
    values, keys = _every_kind(CAR)
    values += [good_record(CAR, seq=i, speed=float(i)) for i in range(10)]
    keys += [None] * 10
    pre = Preprocessor(CAR, Validator(CAR), where="speed >= 5")
    outcomes = pre.process(values, keys)
    assert len(outcomes) == len(values)
    stats = pre.stats
    bad, keyed = bad_records(CAR), bad_keyed_records(CAR)
    assert stats.balanced
    assert stats.received == len(values)
    assert stats.dlq == len(bad) + len(keyed) + 1
    assert stats.filtered == sum(1 for o in outcomes if o is FILTERED) > 0
    assert stats.clean == sum(1 for o in outcomes if isinstance(o, bytes)) > 0
    for (reason, _), outcome in zip(bad, outcomes, strict=False):
        assert isinstance(outcome, Rejection) and outcome.reason == reason
    assert sum(stats.by_reason.values()) == stats.dlq
    clean = decode_clean([o for o in outcomes if isinstance(o, bytes)], CAR)
    assert (clean.column("speed") >= 5).all()  # type: ignore[operator]


def test_preprocessor_of_another_schema() -> None:
    values, keys = _every_kind(PUMPS)
    pre = Preprocessor(PUMPS, where="fault is null and flow_rate > 100")
    outcomes = pre.process(values, keys)
    assert pre.stats.balanced and pre.stats.received == len(values)
    clean = decode_clean([o for o in outcomes if isinstance(o, bytes)], PUMPS)
    assert len(clean) == pre.stats.clean > 0
    assert set(clean.label) == {None}
    assert (clean.column("flow_rate") > 100).all()  # type: ignore[operator]
    assert clean.key.count("pump-001") >= 3  # the good records among the edge cases


def test_preprocessor_without_filter_passes_all_good() -> None:
    pre = Preprocessor(CAR)
    outcomes = pre.process([good_record(CAR, seq=i) for i in range(3)])
    assert all(isinstance(o, bytes) for o in outcomes)
    assert pre.stats.to_dict()["clean"] == 3


# ---- the step: consumed records in, outputs out -------------------------------------------------


def _message(
    value: bytes | None,
    key: bytes | None,
    offset: int,
    timestamp: int | None = 1_000,
    headers: list[tuple[str, bytes]] | None = None,
) -> Message:
    kind = TIMESTAMP_NOT_AVAILABLE if timestamp is None else TIMESTAMP_CREATE_TIME
    return Message(
        topic="sensor-raw",
        partition=2,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(kind, -1 if timestamp is None else timestamp),
    )


def test_step_outputs_clean_and_dead_letters() -> None:
    pipeline = Pipeline.builtin(Settings())
    stats = PreprocessStats()
    step = PreprocessStep(pipeline, Preprocessor(CAR, where="speed > 0"), "wall_clock", stats)
    good = good_record(CAR, car_id="car-7")
    stopped = good_record(CAR, car_id="car-8", speed=0.0)
    messages = [
        _message(good, None, 10),  # no key: the clean record is keyed by the car
        _message(good, b"car-7", 11, timestamp=None),  # no timestamp: stamped when produced
        _message(b"[]", b"car-9", 12, headers=[("trace", b"1")]),
        _message(None, b"car-9", 13),
        _message(stopped, b"car-8", 14),
    ]
    result = step.process(messages)
    assert (result.dead_lettered, result.filtered) == (2, 1)
    clean = [o for o in result.outputs if o[0] == "sensor-clean"]
    dlq = [o for o in result.outputs if o[0] == "sensor-dlq"]
    assert [(o[2], o[3]) for o in clean] == [(b"car-7", 1_000), (b"car-7", 0)]
    assert decode_clean([o[1] for o in clean], CAR).key == ["car-7", "car-7"]  # type: ignore[misc]
    first, second = dlq
    assert (first[1], first[2], first[3]) == (b"[]", b"car-9", 0)  # value and key kept
    assert first[4] is not None and first[4][0] == ("trace", b"1")  # original headers first
    assert read_dead_letter(first[4])["lakeless.reason"] == "not_an_object"
    assert read_dead_letter(first[4])["lakeless.source.offset"] == "12"
    assert (second[1], read_dead_letter(second[4])["lakeless.reason"]) == (None, "empty")
    assert stats.clean == 0  # nothing is counted before the batch is committed
    step.committed(result, len(messages))
    assert stats.clean == 2 and stats.by_reason == {"not_an_object": 1, "empty": 1}


def test_cli_options_come_from_the_settings() -> None:
    from typer.testing import CliRunner

    from lakeless.cli import app

    result = CliRunner().invoke(app, ["preprocess", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name in PreprocessSettings.model_fields:
        option = "--" + name.replace("_", "-")
        assert option in text, option
        assert f"LAKELESS_PREPROCESS__{name.upper()}" in text, name
    assert "--batch-size <int> Most records per batch. [default: 5000]" in text
