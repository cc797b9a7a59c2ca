"""Unit tests of the score benchmark's result assembly (no broker, no processes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakeless.bench._result import BenchResult
from lakeless.bench._score import (
    CEILING,
    LATENCY,
    QUICK_EVENTS,
    SCORE_PATHS,
    ScoreBenchReport,
    ScoreBenchSettings,
    encode_rows,
    goals,
    latency_result,
    steady_rate,
)
from lakeless.fleet import FAILURE_MODES, Fleet
from lakeless.schema import encode_clean


def test_encode_rows_matches_encode_clean() -> None:
    batch = Fleet(20, seed=3, start=0, failure_rate=50.0).step()
    labels = [FAILURE_MODES[c] if c >= 0 else None for c in batch.failure.tolist()]
    rows = encode_rows(batch.ts, batch.seq, batch.values, batch.car_ids, batch.models, labels)
    assert rows == [encode_clean(event) for event in batch.events()]


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
    assert len(data["goals"]) == 3
    assert "1p vs raw-consume" in str(report.table().caption)


def test_goals_unmeasured_when_skipped() -> None:
    results = [BenchResult(CEILING, 100, 1.0), BenchResult("quixstreams-per-record", 0, 0.0)]
    assert [row["met"] for row in goals(results)] == [None, None, None]


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
