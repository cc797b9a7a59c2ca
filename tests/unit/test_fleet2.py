"""The second simulator: deterministic, labelled like the fleet, relation modes in range."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakeless.examples import car_fleet
from lakeless.model import ZScoreModel, evaluate
from lakeless.testing.fleet2 import MODES, RELATION_MODES, Fleet2, SimWindow, collect

COLUMN = {name: i for i, name in enumerate(car_fleet().feature_names)}


@pytest.fixture(scope="module")
def window() -> SimWindow:
    return collect(Fleet2(60, seed=5, start=0, failure_rate=4.0, repair_after=300.0), 1800)


def labels_of(win: SimWindow) -> np.ndarray:
    return np.array(["" if label is None else label for label in win.labels])


def test_deterministic_per_seed() -> None:
    a = collect(Fleet2(10, seed=3, failure_rate=10.0), 300)
    b = collect(Fleet2(10, seed=3, failure_rate=10.0), 300)
    c = collect(Fleet2(10, seed=4, failure_rate=10.0), 300)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.labels == b.labels and a.models == b.models
    np.testing.assert_array_equal(a.ts, b.ts)
    assert not np.array_equal(a.values, c.values)


def test_every_mode_is_labelled_from_onset_to_repair(window: SimWindow) -> None:
    labels = labels_of(window)
    assert set(labels.tolist()) == {"", *MODES}
    assert 0.5 < (labels == "").mean() < 0.95
    # Each car's labels: runs of one mode as long as the repair time (a run at the end of the
    # window may be cut; a failure may start at the step of a repair, doubling a run).
    full = 0
    for car in sorted(set(window.car_ids)):
        runs: list[int] = []
        previous = ""
        for label in labels[np.asarray(window.car_ids) == car].tolist():
            if label and label == previous:
                runs[-1] += 1
            elif label:
                runs.append(1)
            previous = label
        assert all(n % 300 == 0 for n in runs[:-1])
        full += sum(n // 300 for n in runs)
    assert full >= 20


def test_schema_ranges_and_events(window: SimWindow) -> None:
    schema = car_fleet()
    low = np.array([f.min for f in schema.features])
    high = np.array([f.max for f in schema.features])
    assert ((window.values >= low) & (window.values <= high)).all()
    assert set(window.models) <= {"e-sedan", "e-suv", "e-van", "hybrid-hatch"}
    batch = Fleet2(5, seed=1, failure_rate=1e6).step()
    events = batch.events()
    assert [e.failure for e in events] == batch.labels()
    assert all(e.failure in MODES for e in events)
    record = json.loads(batch.encode()[0])
    assert set(record) == {f.name for f in schema.fields}


@pytest.mark.parametrize(
    ("mode", "column"),
    [("vibration_decoupled", "engine_vibration_amplitude"), ("coolant_stuck", "coolant_temp")],
)
def test_relation_modes_stay_in_the_healthy_range(
    window: SimWindow, mode: str, column: str
) -> None:
    assert mode in RELATION_MODES
    labels = labels_of(window)
    values = window.values[:, COLUMN[column]]
    models = np.asarray(window.models)
    for model in np.unique(models).tolist():
        healthy = values[(labels == "") & (models == model)]
        failing = values[(labels == mode) & (models == model)]
        if len(failing) == 0:
            continue
        # Noise on a reading may reach past the healthy extremes by a hair.
        slack = 0.01 * (healthy.max() - healthy.min())
        assert healthy.min() - slack <= failing.min() and failing.max() <= healthy.max() + slack
    # The other signals of those rows stay in their healthy ranges too (but for the rare tail
    # of heavy-tailed noise).
    healthy_rows = window.values[labels == ""]
    failing_rows = window.values[labels == mode]
    outside = (failing_rows < healthy_rows.min(axis=0)) | (failing_rows > healthy_rows.max(axis=0))
    assert outside.any(axis=1).mean() < 1e-3


def test_relations_break(window: SimWindow) -> None:
    labels = labels_of(window)
    speed = window.values[:, COLUMN["speed"]]
    vibration = window.values[:, COLUMN["engine_vibration_amplitude"]]
    healthy, decoupled = labels == "", labels == "vibration_decoupled"
    assert np.corrcoef(speed[healthy] ** 2, vibration[healthy])[0, 1] > 0.8
    assert np.corrcoef(speed[decoupled] ** 2, vibration[decoupled])[0, 1] < 0.5
    # Coolant follows the load (throttle, smoothed) when healthy, not when stuck.
    car_speed = speed.reshape(-1, 60)
    coolant = window.values[:, COLUMN["coolant_temp"]].reshape(-1, 60)
    lab = labels.reshape(-1, 60)
    moved = np.abs(np.diff(coolant, axis=0))[(lab[1:] == "coolant_stuck") & (lab[:-1] == lab[1:])]
    assert np.median(moved) < 0.5 and car_speed.shape[0] == 1800


def test_dropout_lowers_one_noisy_signal(window: SimWindow) -> None:
    labels = labels_of(window)
    accels = window.values[
        :, [COLUMN[f"accelerometer_{w}_value"] for w in ("1_1", "1_2", "2_1", "2_2")]
    ]
    rows = (labels == "accelerometer_dropout") & (accels.max(axis=1) > 0.1)
    ratio = accels[rows].min(axis=1) / np.median(accels[rows], axis=1)
    assert np.mean(ratio < 0.2) > 0.3  # in bursts: about half of the time
    healthy = (labels == "") & (accels.max(axis=1) > 0.1)
    assert np.mean(accels[healthy].min(axis=1) / np.median(accels[healthy], axis=1) < 0.2) < 0.05


def test_evaluate_works_on_it(window: SimWindow) -> None:
    model = ZScoreModel().fit(window.values, window.labels)
    assert model.threshold is not None
    ev = evaluate(
        model.score(window.values), model.threshold, window.labels, window.car_ids, window.ts
    )
    assert set(ev.per_mode) == set(MODES)
    assert all(m.episodes for m in ev.per_mode.values())
