"""``bench detect``'s settings, statistics, aggregation and table (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from lakeless.bench._detect import (
    MODEL_NAMES,
    DetectBenchSettings,
    DetectReport,
    _aggregate,
    _smoothed,
    _stat,
)
from lakeless.cli import app


def test_quick_settings_and_unknown_models() -> None:
    quick = DetectBenchSettings.for_mode(True)
    assert quick.seeds == (1,) and quick.cars == 20 and quick.quick
    assert DetectBenchSettings.for_mode(False).seeds == (1, 2, 3)
    assert DetectBenchSettings.for_mode(True, seeds=(4, 5)).seeds == (4, 5)
    with pytest.raises(ValueError, match="unknown model"):
        DetectBenchSettings.for_mode(True, models=("nosuch",))
    result = CliRunner().invoke(app, ["bench", "detect", "--models", "autoencoder,nosuch"])
    assert result.exit_code == 2 and "nosuch" in result.output


def test_stat_and_aggregations() -> None:
    assert _stat([0.5, 1.0, None]) == {"mean": 0.75, "spread": 0.5, "per_seed": [0.5, 1.0, None]}
    assert _stat([None])["mean"] is None
    errors = np.array([[1.0, 2.0, 6.0, 3.0]])
    assert _aggregate(errors, "mean")[0] == 3.0
    assert _aggregate(errors, "max")[0] == 6.0
    assert _aggregate(errors, "top2")[0] == 4.5


def test_smoothing_averages_noise_out_and_adds_a_sustained_shift_up() -> None:
    from lakeless.testing.fleet2 import SimWindow

    rng = np.random.default_rng(0)
    n = 2000  # two cars interleaved, one event per second each
    cars = ["a", "b"] * (n // 2)
    ts = np.repeat(np.arange(n // 2) * 1000, 2)
    raw = rng.exponential(1.0, n)
    raw[n // 2 :: 2] += 0.8  # car a: a small lasting shift in the second half
    win = SimWindow(np.zeros((n, 18)), [None] * n, cars, ts, ["m"] * n)
    smooth = _smoothed(lambda w: raw, 30.0)(win)
    shifted = slice(n // 2 + 100, None, 2)  # car a, three time constants into the shift
    # Raw, no threshold above car b's healthy scores sees the shift; smoothed, most of it shows.
    assert np.mean(raw[shifted] > raw[1::2].max()) < 0.01
    assert np.mean(smooth[shifted] > smooth[1::2].max()) > 0.8
    assert np.all(smooth[:2] == raw[:2])  # a car's first event is its own average


def test_report_table() -> None:
    stat = _stat([0.8, 1.0])
    report = DetectReport(
        DetectBenchSettings.for_mode(True),
        results=[
            {
                "model": MODEL_NAMES[0],
                "data": "fleet",
                "onnx": "yes",
                "fit_seconds": _stat([1.0]),
                "false_alarms_per_10k": _stat([2.0, 4.0]),
                "per_mode": {
                    "shock": {
                        "episode_recall": stat,
                        "delay_s_median": _stat([10.0, 20.0]),
                        "event_recall": stat,
                        "episodes": 9,
                    }
                },
            }
        ],
        machine={"cpu_count": 2},
    )
    console = Console(width=200, record=True)
    console.print(report.table())
    text = console.export_text()
    assert "shock 0.90±0.20" in text and "3.0±2.0" in text
    assert report.to_dict()["suite"] == "detect"
