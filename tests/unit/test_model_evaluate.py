"""evaluate() on hand-made arrays: every number is worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakeless.model import evaluate


def test_event_metrics() -> None:
    # 10 healthy rows (2 false alarms), 4 shock rows (3 detected), 2 battery rows (0 detected).
    scores = np.array([0.1] * 8 + [0.9, 0.6] + [0.7, 0.8, 0.2, 0.9] + [0.3, 0.4])
    labels = [None] * 10 + ["shock"] * 4 + ["battery"] * 2
    ev = evaluate(scores, 0.5, labels)
    assert (ev.events, ev.healthy, ev.failures, ev.alarms, ev.false_alarms) == (16, 10, 6, 5, 2)
    assert ev.false_alarms_per_10k == 2000.0
    assert ev.precision == pytest.approx(3 / 5)
    assert ev.recall == pytest.approx(3 / 6)
    assert ev.f1 == pytest.approx(2 * 0.6 * 0.5 / 1.1)
    shock = ev.per_mode["shock"]
    assert (shock.events, shock.detected, shock.recall) == (4, 3, 0.75)
    assert shock.precision == pytest.approx(3 / 5)  # one mode against the same healthy rows
    assert shock.f1 == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    battery = ev.per_mode["battery"]
    assert (battery.recall, battery.precision, battery.f1) == (0.0, 0.0, 0.0)
    assert battery.episodes is None
    assert list(ev.per_mode) == ["battery", "shock"]
    json.dumps(ev.to_dict())


def test_threshold_is_strict_and_empty_cases() -> None:
    ev = evaluate(np.array([0.5, 0.5]), 0.5, [None, "shock"])
    assert ev.alarms == 0 and ev.precision is None and ev.recall == 0.0
    healthy_only = evaluate(np.array([1.0]), 0.5, [None])
    assert healthy_only.recall is None and healthy_only.per_mode == {}
    assert healthy_only.false_alarms_per_10k == 10_000.0
    with pytest.raises(ValueError):
        evaluate(np.array([1.0, 2.0]), 0.5, [None])


def test_episodes_and_delays() -> None:
    # Rows deliberately out of order: evaluate sorts by car, then time.
    rows = [
        # car a: healthy, shock episode 1 (onset 2000, first alarm 5000), healthy, shock episode 2
        # (onset 9000, never detected, ends before a's last row), healthy.
        ("a", 1000, None, 0.0),
        ("a", 2000, "shock", 0.0),
        ("a", 3000, "shock", 0.0),
        ("a", 5000, "shock", 1.0),
        ("a", 6000, "shock", 1.0),
        ("a", 7000, None, 0.0),
        ("a", 9000, "shock", 0.0),
        ("a", 10000, None, 0.0),
        # car b: shock from its first row (censored, detected), then battery (onset 4000, alarm at
        # 4000: delay 0), then battery again after healthy, undetected at b's end (ongoing).
        ("b", 1000, "shock", 1.0),
        ("b", 2000, "shock", 0.0),
        ("b", 4000, "battery", 1.0),
        ("b", 5000, None, 0.0),
        ("b", 6000, "battery", 0.0),
    ]
    order = [5, 0, 12, 3, 8, 1, 10, 7, 2, 11, 4, 9, 6]
    car_ids = [rows[i][0] for i in order]
    ts = np.array([rows[i][1] for i in order])
    labels = [rows[i][2] for i in order]
    scores = np.array([rows[i][3] for i in order])
    ev = evaluate(scores, 0.5, labels, car_ids=car_ids, ts=ts)
    shock = ev.per_mode["shock"]
    assert (shock.episodes, shock.episodes_detected, shock.censored, shock.ongoing) == (3, 2, 1, 0)
    assert shock.episode_recall == pytest.approx(2 / 3)
    assert (shock.delay_s_median, shock.delay_s_max) == (3.0, 3.0)
    battery = ev.per_mode["battery"]
    assert (battery.episodes, battery.episodes_detected, battery.ongoing) == (2, 1, 1)
    assert battery.episode_recall == 1.0
    assert (battery.delay_s_median, battery.delay_s_p90, battery.delay_s_max) == (0.0, 0.0, 0.0)


def test_delay_quantiles() -> None:
    # Five tire episodes on five cars, each after one healthy row; delays 1..5 s.
    car_ids, ts, labels, scores = [], [], [], []
    for k in range(5):
        for step in range(8):
            car_ids.append(f"car-{k}")
            ts.append(step * 1000)
            labels.append(None if step == 0 else "tire_pressure")
            scores.append(1.0 if step == k + 2 else 0.0)
    ev = evaluate(np.array(scores), 0.5, labels, car_ids, np.array(ts))
    tire = ev.per_mode["tire_pressure"]
    assert (tire.episodes, tire.episodes_detected, tire.episode_recall) == (5, 5, 1.0)
    assert tire.delay_s_median == 3.0 and tire.delay_s_max == 5.0
    assert tire.delay_s_p90 == pytest.approx(4.6)
