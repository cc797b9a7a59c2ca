"""Unit tests of the score benchmark's result assembly (no broker, no processes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakeless.bench._latency import (
    KAFKA_E2E,
    RELAY,
    ProbeRun,
    parse_end_to_end_latency,
    repeated_e2e,
    repeated_latency,
)
from lakeless.bench._result import BenchResult
from lakeless.bench._rows import encode_rows
from lakeless.bench._score_report import (
    CEILING,
    LATENCY,
    SCORE_PATHS,
    ScoreBenchReport,
    goals,
    latency_result,
    steady_rate,
)
from lakeless.bench._score_settings import QUICK_EVENTS, ScoreBenchSettings
from lakeless.examples import car_fleet
from lakeless.fleet import FAILURE_MODES, Fleet
from lakeless.schema import CleanCodec


def test_encode_rows_matches_encode_clean() -> None:
    batch = Fleet(20, seed=3, start=0, failure_rate=50.0).step()
    labels = [FAILURE_MODES[c] if c >= 0 else None for c in batch.failure.tolist()]
    rows = encode_rows(batch.ts, batch.seq, batch.values, batch.car_ids, batch.models, labels)
    assert rows == [CleanCodec(car_fleet()).encode(event) for event in batch.events()]


def test_steady_rate_leaves_out_start_up() -> None:
    samples = [(0.0, 0), (5.0, 0), (5.5, 1000), (6.5, 11_000), (7.0, 11_000)]
    assert steady_rate(samples, 11_000) == (10_000, 1.0)
    assert steady_rate([(0.0, 0)], 10) == (0, 0.0)
    # Never reached: up to the last sample.
    assert steady_rate([(1.0, 10), (2.0, 30)], 100) == (20, 1.0)


def test_latency_percentiles() -> None:
    result = latency_result(list(np.arange(1, 1001, dtype=float)), 10.0, batch_ms=5)
    assert result.name == LATENCY
    assert result.events == 1000
    assert result.extra["p50_ms"] == pytest.approx(500.5)
    assert result.extra["p99_ms"] == pytest.approx(990.01)
    assert result.extra["max_ms"] == 1000.0
    assert result.extra["batch_ms"] == 5
    empty = latency_result([], 0.0)
    assert empty.extra["p99_ms"] is None


def test_goals_and_report_json() -> None:
    results = [
        BenchResult(CEILING, 1_000_000, 1.0),
        BenchResult("lakeless-score-1p", 600_000, 1.0),
        BenchResult("quixstreams-per-record", 50_000, 1.0),
        latency_result([10.0] * 99 + [30.0], 1.0),
    ]
    rows = {row["goal"]: row for row in goals(results)}
    assert rows["1p vs raw-consume"] == {
        "goal": "1p vs raw-consume",
        "value": 0.6,
        "op": ">=",
        "bound": 0.5,
        "met": True,
    }
    assert rows["1p vs quixstreams"]["value"] == 12.0
    assert rows["p99 latency ms"]["met"] is True
    report = ScoreBenchReport("score", results, ceiling=CEILING, machine={"cpus": 2})
    data = json.loads(report.to_json())
    assert [r["name"] for r in data["results"]][:2] == [CEILING, "lakeless-score-1p"]
    assert data["results"][1]["ratio_to_ceiling"] == 0.6
    assert len(data["goals"]) == 6
    assert "1p vs raw-consume" in str(report.table().caption)


def test_latency_goals_ratio_to_relay_and_saturation() -> None:
    results = [
        BenchResult(LATENCY, 100, 1.0, {"p50_ms": 8.0, "p99_ms": 30.0, "saturated": True}),
        BenchResult(RELAY, 100, 1.0, {"p50_ms": 4.0, "p99_ms": 12.0, "saturated": False}),
        BenchResult(KAFKA_E2E, 100, 1.0, {"p50_ms": 1.0, "p99_ms": 3.0}),
    ]
    rows = {row["goal"]: row for row in goals(results)}
    assert rows["p99 latency vs relay"]["value"] == 2.5
    assert rows["p99 latency vs relay"]["met"] is False
    assert rows["p99 latency ms"]["saturated"] is True
    caption = str(ScoreBenchReport("score", results, machine={}).table().caption)
    assert "latency/relay p50 2.0, p99 2.5" in caption
    assert "SATURATED: latency fell behind" in caption
    assert "relay-latency fell behind" not in caption
    assert "did not offer the rate" not in caption
    results[0].extra.update(generator_ok=False, offered_per_s=[9000.0], target_per_s=20000)
    caption = str(ScoreBenchReport("score", results, machine={}).table().caption)
    assert "latency: the probe did not offer the rate asked for" in caption


def test_probe_run_saturation() -> None:
    kept_up = ProbeRun([5.0] * 10, window=1.0, target_per_s=100, offered_per_s=100,
                       received_per_s=97)  # fmt: skip
    behind = ProbeRun([900.0] * 10, window=1.0, target_per_s=100, offered_per_s=100,
                      received_per_s=60)  # fmt: skip
    assert not kept_up.saturated and behind.saturated
    assert ProbeRun().saturated  # nothing offered: nothing measured
    result = repeated_latency(LATENCY, [kept_up, behind, kept_up])
    assert result.extra["saturated"] is True
    assert result.extra["runs_saturated"] == [False, True, False]
    assert result.extra["p99_ms"] == 5.0 and result.extra["repeats"] == 3
    assert result.extra["spread_p99"] == pytest.approx(179.0)
    empty = repeated_latency(RELAY, [ProbeRun()])
    assert empty.extra["p99_ms"] is None and empty.extra["saturated"] is True


def test_end_to_end_latency_output_parsed() -> None:
    output = (
        "0\t412.3\n1000\t1.7\nAvg latency: 1.9021 ms\n"
        "Percentiles: 50th = 1, 99th = 4, 99.9th = 11\n"
    )
    summary = parse_end_to_end_latency(output)
    assert summary == {"avg_ms": 1.9021, "p50_ms": 1.0, "p99_ms": 4.0, "p999_ms": 11.0}
    with pytest.raises(ValueError, match="no summary"):
        parse_end_to_end_latency("0\t412.3\n")
    run = {**summary, "records": 1000, "wall_s": 3.0}
    result = repeated_e2e([run, {**run, "p99_ms": 6.0}, run])
    assert result.name == KAFKA_E2E
    assert result.extra["p99_ms"] == 4.0 and result.extra["runs_p99_ms"] == [4.0, 6.0, 4.0]
    assert result.extra["spread_p99"] == 0.5


def test_goals_unmeasured_when_skipped() -> None:
    results = [BenchResult(CEILING, 100, 1.0), BenchResult("quixstreams-per-record", 0, 0.0)]
    assert [row["met"] for row in goals(results)] == [None] * 6


def test_settings_for_mode() -> None:
    quick = ScoreBenchSettings.for_mode(True)
    assert quick.events == QUICK_EVENTS and quick.quick
    assert quick.quix_events <= quick.events and quick.http_events <= quick.events
    assert quick.timeout == 60.0
    small = ScoreBenchSettings.for_mode(True, 1000, quix=False)
    assert (small.events, small.quix_events, small.http_events, small.quix) == (
        1000,
        1000,
        1000,
        False,
    )
    assert ScoreBenchSettings.for_mode(False).events == 2_000_000
    assert SCORE_PATHS[0] == CEILING
