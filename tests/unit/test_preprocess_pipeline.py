"""Dead-letter records, stats balance, and the validate-filter-encode core."""

from __future__ import annotations

import json

from lakeless.preprocess import (
    FILTERED,
    Preprocessor,
    PreprocessStats,
    Reason,
    Rejection,
    Validator,
    dead_letter,
    dead_letter_headers,
    read_dead_letter,
)
from lakeless.schema import decode_clean
from lakeless.testing.corpus import bad_keyed_records, bad_records, edge_good_records, good_record

REJECTION = Rejection(Reason.OUT_OF_RANGE, "speed: Expected `float` <= 120.0", "speed")


def test_dead_letter_headers() -> None:
    headers = dead_letter_headers(
        REJECTION, topic="sensor-raw", partition=3, offset=1234, timestamp=1_700_000_000_000
    )
    assert headers == [
        ("lakeless.reason", b"out_of_range"),
        ("lakeless.detail", b"speed: Expected `float` <= 120.0"),
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
    stats.dead_lettered["empty"] += 1
    stats.dead_lettered["out_of_range"] += 1
    assert stats.balanced and stats.dlq == 2
    assert json.loads(stats.to_json()) == {
        "in": 5,
        "clean": 2,
        "dlq": 2,
        "dlq_by_reason": {"empty": 1, "out_of_range": 1},
        "filtered": 1,
        "balanced": True,
    }
    other = PreprocessStats(received=1, clean=1)
    stats.merge(other)
    assert stats.received == 6 and stats.balanced


def test_preprocessor_counts_every_record_once() -> None:
    bad = bad_records()
    keyed = bad_keyed_records()
    good = [good_record(seq=i, speed=float(i)) for i in range(10)] + edge_good_records()
    values = [raw for _, raw in bad] + [raw for _, _, raw in keyed] + good + [None]
    keys = [None] * len(bad) + [key for _, key, _ in keyed] + [None] * (len(good) + 1)
    pre = Preprocessor(Validator(), where="speed >= 5")
    outcomes = pre.process(values, keys)
    assert len(outcomes) == len(values)
    stats = pre.stats
    assert stats.balanced
    assert stats.received == len(values)
    assert stats.dlq == len(bad) + len(keyed) + 1
    assert stats.filtered == sum(1 for o in outcomes if o is FILTERED) > 0
    assert stats.clean == sum(1 for o in outcomes if isinstance(o, bytes)) > 0
    for (reason, _), outcome in zip(bad, outcomes, strict=False):
        assert isinstance(outcome, Rejection) and outcome.reason == reason
    assert sum(stats.dead_lettered.values()) == stats.dlq
    clean = [decode_clean(o) for o in outcomes if isinstance(o, bytes)]
    assert all(event.speed >= 5 for event in clean)


def test_preprocessor_without_filter_passes_all_good() -> None:
    pre = Preprocessor()
    outcomes = pre.process([good_record(seq=i) for i in range(3)])
    assert all(isinstance(o, bytes) for o in outcomes)
    assert pre.stats.to_dict()["clean"] == 3
