"""Unit tests of the car-fleet simulator (no processes, no brokers)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pytest

from lakeless.config import MqttSettings
from lakeless.examples import car_fleet
from lakeless.fleet import (
    FAILURE_MODES,
    Fleet,
    FleetBatch,
    FleetSettings,
    MemorySink,
    MqttSink,
    SimulationError,
    Simulator,
    fleet_events,
    run_simulation,
)
from lakeless.fleet._settings import parse_time
from lakeless.preprocess import Rejection, Validator
from lakeless.schema import EventCodec
from lakeless.testing.events import decode_event, encode_event

START = 1_700_000_000_000
SCHEMA = car_fleet()
FEATURES = SCHEMA.feature_names


def col(name: str) -> int:
    return FEATURES.index(name)


def run_steps(fleet: Fleet, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Values (steps, cars, 18) and failure codes (steps, cars)."""
    batches = [fleet.step() for _ in range(steps)]
    return np.stack([b.values for b in batches]), np.stack([b.failure for b in batches])


def corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    def stream(seed: int) -> list[bytes]:
        fleet = Fleet(50, seed=seed, start=START, failure_rate=30.0, repair_after=60.0)
        return [raw for _ in range(40) for raw in fleet.step().encode()]

    assert stream(3) == stream(3)
    assert stream(3) != stream(4)


def test_ids_seq_and_timestamps() -> None:
    fleet = Fleet(4, seed=1, start=START, interval=2.0)
    first, second = fleet.step(), fleet.step()
    assert list(first.car_ids) == ["car-00000", "car-00001", "car-00002", "car-00003"]
    assert first.seq == 0 and second.seq == 1
    assert np.all(np.diff(first.ts) >= 0)  # car order is time order
    assert np.all((first.ts >= START) & (first.ts < START + 2000))
    assert np.all(second.ts - first.ts == 2000)
    assert set(fleet.models) <= {"e-sedan", "e-suv", "e-van", "hybrid-hatch"}


def test_every_event_validates_against_the_schema() -> None:
    fleet = Fleet(300, seed=11, start=START, failure_rate=40.0, repair_after=120.0, ramp=10.0)
    labels: set[str | None] = set()
    for _ in range(200):
        batch = fleet.step()
        events = batch.events()
        encoded = batch.encode()
        assert encoded == [encode_event(e) for e in events]
        for raw, event in zip(encoded, events, strict=True):
            assert decode_event(raw) == event
        labels.update(batch.labels())
    assert labels == {None, *FAILURE_MODES}


def test_every_event_passes_the_validator_keyed_by_its_car() -> None:
    fleet = Fleet(50, seed=3, start=START, failure_rate=60.0, repair_after=60.0, ramp=5.0)
    validator = Validator(SCHEMA, max_future_ms=None)
    for _ in range(50):
        batch = fleet.step()
        raws = batch.encode()
        keys = [car_id.encode() for car_id in batch.car_ids]
        results = validator.validate_batch(raws, keys, batch.ts.tolist())
        assert not [r for r in results if isinstance(r, Rejection)]
        assert [EventCodec(SCHEMA).to_dict(r) for r in results] == [
            EventCodec(SCHEMA).to_dict(e) for e in batch.events()
        ]


def test_extreme_failures_stay_in_range() -> None:
    fleet = Fleet(100, seed=2, start=START, ramp=0.0)
    for car in range(100):
        fleet.inject(car, FAILURE_MODES[car % 5], wheel=car % 4)
    for _ in range(600):
        batch = fleet.step()
    for raw in batch.encode():
        decode_event(raw)


def test_signals_are_physically_consistent() -> None:
    fleet = Fleet(200, seed=5, start=START, models=["e-sedan"])
    values, _ = run_steps(fleet, 600)
    values = values[120:]  # let the thermal state settle
    speed = values[..., col("speed")]
    current = values[..., col("current_draw")]
    throttle = values[..., col("throttle_pos")]
    moving = speed > 1.0
    assert corr(values[..., col("engine_vibration_amplitude")][moving], speed[moving]) > 0.8
    assert corr(values[..., col("intake_air_flow_speed")], speed) > 0.8
    driving = moving & (throttle > 0.02)
    assert corr(current[driving], throttle[driving]) > 0.6
    # Voltage sags with current at a given charge: residual of V ~ soc falls with current.
    soc = values[..., col("battery_percentage")]
    volts = values[..., col("battery_voltage")]
    design = np.column_stack([np.ones(soc.size), soc.ravel(), current.ravel()])
    coef = np.linalg.lstsq(design, volts.ravel(), rcond=None)[0]
    assert coef[2] < -0.05  # ohms: the pack's internal resistance
    # Coolant rises with load: cars that drew more current run hotter above intake.
    excess = values[..., col("coolant_temp")] - values[..., col("intake_air_temp")]
    load = np.abs(current).mean(axis=0)
    heavy, light = load > np.quantile(load, 0.75), load < np.quantile(load, 0.25)
    assert excess[-100:, heavy].mean() > excess[-100:, light].mean() + 3.0
    # Tires sit near their fill pressure, all four alike.
    tires = values[..., [col(f"tire_pressure_{i}_{j}") for i in (1, 2) for j in (1, 2)]]
    assert np.all(np.abs(tires - 42.0) < 5.0)
    assert np.abs(tires - tires.mean(axis=-1, keepdims=True)).max() < 3.0
    # Throttle and regenerative braking agree with acceleration.
    accel = np.diff(speed, axis=0)
    assert throttle[1:][accel > 1.0].mean() > throttle[1:][np.abs(accel) < 0.1].mean()
    assert np.all(current[1:][accel < -2.0] < 0.0)


def test_battery_drains_when_driving_and_recharges_when_parked() -> None:
    fleet = Fleet(30, seed=8, start=START, models=["hybrid-hatch"], interval=5.0)
    values, _ = run_steps(fleet, 1500)
    soc = values[..., col("battery_percentage")]
    speed = values[..., col("speed")]
    current = values[..., col("current_draw")]
    assert (soc[100] < soc[0]).mean() > 0.9
    charging = (speed == 0.0) & (current < -5.0)
    assert charging.any()
    step, car = np.argwhere(charging)[0]
    assert soc[step + 20, car] > soc[step, car] + 1.0


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_failure_ramps_in_gradually_and_is_labelled(mode: str) -> None:
    cars, warmup, ramp = 60, 200, 45.0
    healthy = Fleet(cars, seed=9, start=START, ramp=ramp)
    broken = Fleet(cars, seed=9, start=START, ramp=ramp)
    run_steps(healthy, warmup)
    run_steps(broken, warmup)
    for car in range(cars):
        broken.inject(car, mode, wheel=car % 4)
    base, _ = run_steps(healthy, 240)
    seen, labels = run_steps(broken, 240)
    assert np.all(labels == FAILURE_MODES.index(mode))  # labelled from the onset step on

    diff = seen - base
    rows = np.arange(cars)
    moving = base[..., col("speed")] > 3.0

    def signature(t: int) -> Any:
        if mode == "tire_pressure":
            return -diff[t, rows, col("tire_pressure_1_1") + rows % 4]
        if mode == "shock":
            return diff[t, rows, col("accelerometer_1_1_value") + rows % 4][moving[t]]
        if mode == "drive_shaft":
            return diff[t, :, col("engine_vibration_amplitude")][moving[t]]
        if mode == "overheating":
            return diff[t, :, col("coolant_temp")]
        return -diff[t, :, col("battery_voltage")]

    early, mid, full = (float(np.median(signature(t))) for t in (3, 25, 200))
    assert 0.0 <= early < 0.25 * full  # inside the healthy spread at first
    assert early < mid < full or mode == "overheating"  # thermal lag: slower, still rising
    late = float(np.median(signature(120)))
    assert full > 0 and late > 0
    scale = {
        "tire_pressure": 8.0,  # psi
        "shock": 0.2,  # g
        "drive_shaft": 1000.0,  # um
        "overheating": 25.0,  # degC
        "battery": 12.0,  # V
    }[mode]
    assert np.percentile(signature(200), 10) > scale


def test_repair_clears_the_label_and_the_signature() -> None:
    fleet = Fleet(10, seed=4, start=START, repair_after=120.0, ramp=10.0)
    fleet.step()
    fleet.inject("car-00003", "tire_pressure", wheel=2)
    _, labels = run_steps(fleet, 130)
    span = labels[:, 3] == FAILURE_MODES.index("tire_pressure")
    assert span[:120].all() and not span[120:].any()
    values, labels = run_steps(fleet, 5)
    assert np.all(labels == -1)
    tires = values[-1, 3, col("tire_pressure_1_1") : col("tire_pressure_2_2") + 1]
    assert tires.max() - tires.min() < 2.0

    fleet.inject(5, "overheating")
    fleet.step()
    fleet.repair(5)
    assert fleet.step().labels()[5] is None


def test_random_failures_follow_rate_and_stick_until_repair() -> None:
    fleet = Fleet(400, seed=6, start=START, failure_rate=2.0, repair_after=300.0, interval=10.0)
    _, labels = run_steps(fleet, 360)  # one simulated hour
    started = sum(fleet.failures_started.values())
    assert 300 < started < 1000  # ~ 400 cars x 2/h, less while cars are already broken
    for car in range(20):
        active = labels[:, car] >= 0
        starts = np.flatnonzero(np.diff(active.astype(int)) == 1) + 1
        for start in starts:
            if start + 31 < len(active):
                assert active[start : start + 30].all() and not active[start + 30]
                assert len(set(labels[start : start + 30, car].tolist())) == 1


def test_large_fleet_step() -> None:
    fleet = Fleet(10_000, seed=1, start=START, failure_rate=1.0)
    batch = fleet.step()
    assert len(batch.encode()) == 10_000


def test_fleet_events_and_iterators() -> None:
    events = list(fleet_events(cars=7, seed=2, count=20, start=START))
    assert len(events) == 20
    assert [e.seq for e in events[:8]] == [0] * 7 + [1]
    assert len(list(fleet_events(cars=3, seed=2, duration=4.5, start=START))) == 15
    fleet = Fleet(5, seed=2, start=START)
    assert [e.car_id for e in fleet.events(count=6)][-1] == "car-00000"


def test_simulator_counts_and_stops() -> None:
    sink = MemorySink()
    stats = run_simulation(
        sink=sink, cars=20, seed=1, duration=30, speedup=0, start=START, failure_rate=60.0
    )
    assert stats.stopped_by == "duration" and stats.events == 600 == len(sink.events)
    assert stats.delivered == 600 and stats.steps == 30
    labelled = sum(stats.labelled.values())
    assert labelled == sum(e.failure is not None for e in sink.events) > 0
    assert stats.healthy + labelled == 600
    assert stats.failures_started == {m: stats.failures_started[m] for m in FAILURE_MODES}

    stats = run_simulation(sink=MemorySink(), cars=20, seed=1, speedup=0, count=45)
    assert (stats.events, stats.stopped_by) == (45, "count")

    # Paced at wall speed: a chunk leaves when its last event is due (the step's last car
    # reports up to 1 s after the step begins), and a timeout stops it within two steps.
    stats = run_simulation(sink=MemorySink(), cars=20, seed=1, speedup=1.0, timeout=1.2)
    assert stats.stopped_by == "timeout" and 0 < stats.events <= 40

    # stop() from another thread, once the first events went out (paced: it waits in between).
    sent = threading.Event()

    class Signalling(MemorySink):
        def send(self, batch: FleetBatch, start: int, stop: int) -> None:
            super().send(batch, start, stop)
            sent.set()

    simulator = Simulator(FleetSettings(cars=5, seed=1, speedup=1.0), sink=Signalling())
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(simulator.run(timeout=60)))
    runner.start()
    assert sent.wait(30)
    simulator.stop()
    runner.join(30)
    assert not runner.is_alive()
    (stats,) = result
    assert stats.stopped_by == "signal" and 5 <= stats.events < 60 and stats.events % 5 == 0

    # a stop requested before the run starts stops it before it sends anything
    sink = MemorySink()
    early = Simulator(FleetSettings(cars=5, seed=1, speedup=0), sink=sink)
    early.stop()
    assert (early.run(count=1000).stopped_by, sink.sent) == ("signal", 0)
    assert early.run(count=10).stopped_by == "count"  # the next run starts afresh


def test_settings_are_frozen_and_strict() -> None:
    settings = FleetSettings(cars=3)
    with pytest.raises(ValueError):
        FleetSettings(cars=0)
    with pytest.raises(ValueError):
        FleetSettings.model_validate({"carz": 3})
    with pytest.raises(ValueError):
        settings.cars = 4
    with pytest.raises(ValueError):
        Fleet(3, models=["tractor"])


def test_mqtt_sink_reports_unreachable_broker() -> None:
    sink = MqttSink(MqttSettings(url="mqtt://127.0.0.1:1"), connect_timeout=1.0)
    with pytest.raises(SimulationError):
        sink.open()


def test_times_are_ms_iso_now_or_relative() -> None:
    now = 1_700_000_000_000
    assert parse_time(None) is None and parse_time("now", now_ms=now) == now
    assert parse_time("1700000000000") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20") == 1_700_000_000_000
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    assert parse_time("-30m", now_ms=now) == now - 30 * 60_000
    assert parse_time("-2h", now_ms=now) == now - 2 * 3_600_000
    with pytest.raises(ValueError, match="relative like -30m"):
        parse_time("yesterday")


def test_a_fast_run_with_a_duration_ends_now() -> None:
    import time

    settings = FleetSettings(fast=True, duration=1800)
    first = settings.first_time()
    assert first is not None
    assert abs(first + 1_800_000 - time.time() * 1000) < 5_000
    assert FleetSettings(duration=1800).first_time() is None  # paced: starts now


def test_cli_writes_json_lines(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from typer.testing import CliRunner

    from lakeless.cli import app

    args = ["simulate", "--to", "stdout", "--fast", "--cars", "3", "--duration", "2"]
    result = CliRunner().invoke(app, [*args, "--seed", "1", "--start", "0"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout_bytes.splitlines() if line.startswith(b"{")]
    events = [decode_event(line) for line in lines]
    assert [(e.car_id, e.seq) for e in events] == [
        (f"car-0000{i}", s) for s in range(2) for i in range(3)
    ]
    assert json.loads(lines[0])["ts"] < 1000


def test_send_from_continues_an_earlier_run_exactly() -> None:
    from lakeless.fleet import FleetSettings, MemorySink, Simulator

    common = {"cars": 4, "seed": 3, "start": 1_000_000, "speedup": 0.0, "failure_rate": 20.0}
    whole, tail = MemorySink(), MemorySink()
    Simulator(FleetSettings(duration=40, **common), sink=whole).run()
    Simulator(FleetSettings(duration=40, send_from=1_025_000, **common), sink=tail).run()
    assert tail.events == [e for e in whole.events if e.ts >= 1_025_000]
    assert tail.events and tail.events[0].seq == 25


def test_a_paced_chunk_never_leaves_before_its_last_event_is_due() -> None:
    sent_at: list[tuple[float, int]] = []

    class Clocked(MemorySink):
        def send(self, batch: Any, start: int, stop: int) -> None:
            sent_at.append((time.time() * 1000, int(batch.ts[stop - 1])))
            super().send(batch, start, stop)

    now = int(time.time() * 1000)
    fleet = FleetSettings(cars=50, seed=3, speedup=1.0, start=now, chunk=10, id_prefix="p1-")
    sink = Clocked()
    stats = Simulator(fleet, sink=sink).run(count=100)
    assert stats.events == 100 and {e.car_id[:3] for e in sink.events} == {"p1-"}
    assert len(sent_at) == 10  # chunks of 10
    assert all(sent >= due for sent, due in sent_at)  # no reading from the future
    assert stats.late_max_ms >= 0 and stats.late_mean_ms <= stats.late_max_ms
