"""The vectorized fleet model: one `Fleet.step` advances every car and returns a `FleetBatch`.

All per-car state lives in numpy arrays of length ``cars``; a step is a fixed sequence of array
operations and random draws, so its cost barely depends on Python and the stream depends only on
the seed and the arguments (never on wall time or on how fast a sink consumes it).

Physics per step (``dt`` = the reporting interval):

* Driving cycle: each car cruises towards a target speed (log-normal around its model's cruising
  speed, redrawn every minute or so, with a smooth driver jitter), stops at traffic now and then
  (5-25 s), and parks to charge when its battery runs low. Speed follows the goal through a
  first-order lag limited by the model's acceleration and braking.
* Drive train: tractive force = mass x acceleration + rolling resistance and grade (a slow random
  road grade) + aerodynamic drag. Throttle is that force as a fraction of what the motor can give
  at this speed (constant force up to 8 m/s, constant power above) through a progressive pedal
  map; braking is regenerative. Electrical power = mechanical power / efficiency + auxiliaries
  (HVAC grows with the distance of ambient from 21 degC), or minus the charger power when parked.
* Battery: open-circuit voltage rises with charge; current solves ``I = P / (Voc - R I)``, so
  current grows with throttle and falls with pack voltage, and the terminal voltage sags by
  ``R I`` (R grows in the cold). Charge drains with ``Voc I dt`` and recharges when parked.
* Thermal: heat into the coolant = base + losses proportional to ``|I|`` and to ``I^2``; the
  radiator conductance grows with air flow; coolant relaxes towards ``intake + heat / conductance``
  with the loop's thermal lag. Intake air follows ambient, warmed by the coolant when slow.
  Intake air flow (g/s) = air density (from intake temperature) x duct area x (speed + fan).
* Engine (drive-train) vibration grows with speed and load; wheel accelerometers (RMS, g) grow
  with speed, road roughness (shared by the four wheels) and acceleration; tire pressure follows
  tire temperature (warming with speed) around the pressure each tire was filled to.
* Sensors add noise; values are clipped to the schema's ranges and rounded to a sensible
  resolution per field (shorter JSON, exact round trips).

Failure modes (ground truth in ``failure``), all on a severity ``s`` that rises smoothly
(smoothstep) from 0 at onset to 1 after ``ramp`` seconds (default 45 s of simulated time):

* ``tire_pressure``: one tire's fill pressure falls by up to 32 %.
* ``shock``: one wheel's accelerometer amplitude grows by up to 2.6x (only visible when moving).
* ``drive_shaft``: the vibration-to-speed ratio grows by up to 2.7x (only visible when moving).
* ``overheating``: radiator conductance falls to 40 % and the hot drive adds up to 600 W, so
  coolant rises relative to intake and load (with the thermal lag: about a minute to show).
* ``battery``: internal resistance grows up to 6x (voltage drop proportional to current) and the
  open-circuit voltage falls by up to 6 % (a weak module).

Labelling choice: the label is the mode's name from the onset step (severity 0) until the repair,
never from the moment the deviation becomes noticeable; at onset the readings are inside the
healthy spread, which is why the ramp is short (tens of seconds) against a repair time of many
minutes (default 900 s): at full severity each signature is several noise widths away from the
healthy relationship between the features. Two modes show only while the car moves (``shock``,
``drive_shaft``); the duty cycle keeps standing time low (traffic stops, charging only when
low), and evaluations can split recall by ``speed > 0``. A repaired car is back to healthy
values at once (the workshop refilled the tire, let the coolant cool, replaced the part).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np

from lakeless.fleet._profiles import (
    DEFAULT_MIX,
    FAILURE_MODES,
    NUMERIC_ATTRIBUTES,
    PROFILES,
)
from lakeless.fleet._schema import FEATURES, SCHEMA, SensorEvent

G: Final = 9.81
#: Driving states.
DRIVE: Final = 0
STOP: Final = 1
PARK: Final = 2

_SPEED_LAG: Final = 6.0  # s, how fast speed follows the goal
_BRAKE: Final = 3.5  # m/s^2, comfortable braking
_STOP_EVERY: Final = 300.0  # s of driving between traffic stops, on average
_RETARGET_EVERY: Final = 60.0  # s between changes of cruising speed, on average
_SOC_LOW: Final = 12.0  # % at which a car goes to charge
_BASE_SPEED: Final = 8.0  # m/s, motor: constant force below, constant power above
_PEDAL: Final = 0.6  # pedal position = force fraction ** _PEDAL (progressive pedal map)
_FAN_ON: Final = 55.0  # degC

#: Resolution each field is rounded to (decimal places).
_DECIMALS: Final[dict[str, int]] = {
    "coolant_temp": 2,
    "intake_air_temp": 2,
    "intake_air_flow_speed": 2,
    "battery_percentage": 3,
    "battery_voltage": 2,
    "current_draw": 2,
    "speed": 3,
    "engine_vibration_amplitude": 1,
    "throttle_pos": 4,
    "control_unit_firmware": 0,
}
_SCALE: Final = np.array(
    [10.0 ** _DECIMALS.get(name, 2 if "tire" in name else 4) for name in FEATURES]
)
# `FleetBatch.events` builds events positionally (the fastest way), in the generated class's
# field order: required fields first, then those with defaults.
assert SensorEvent.__struct_fields__ == ("car_id", "ts", "seq", *FEATURES, "model", "failure")
_LOW: Final = np.array([f.min for f in SCHEMA.features])
_HIGH: Final = np.array([f.max for f in SCHEMA.features])
_COLUMN: Final = {name: i for i, name in enumerate(FEATURES)}
_TIRES: Final = tuple(name for name in FEATURES if name.startswith("tire_pressure_"))
_ACCELS: Final = tuple(name for name in FEATURES if name.startswith("accelerometer_"))
_LABELS: Final[tuple[str | None, ...]] = (*FAILURE_MODES, None)  # index -1 -> None
_WHEEL_GAIN: Final = np.array([1.0, 1.0, 0.92, 0.92])  # rear wheels carry less unsprung motion
_MODE_CODE: Final = {name: i for i, name in enumerate(FAILURE_MODES)}


@dataclass(frozen=True)
class FleetBatch:
    """One step of the fleet, column-wise: every car's event at one reporting instant.

    Events are in car order, which is also timestamp order (each car reports at a fixed phase
    within the interval).

    Attributes:
        car_ids: car id of each row (shared with the fleet; do not mutate).
        models: vehicle model of each row.
        ts: event time per row, ms since the epoch (int64).
        seq: the per-car counter of this step (every car reports once per step).
        values: the 18 sensor fields, shape ``(n, 18)``, float64, in the schema's feature
            order, already clipped to the schema ranges and rounded.
        failure: failure-mode code per row (index into `FAILURE_MODES`; -1 when healthy).
    """

    car_ids: Sequence[str]
    models: Sequence[str]
    ts: np.ndarray
    seq: int
    values: np.ndarray
    failure: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> np.ndarray:
        """One sensor field for every car."""
        return self.values[:, _COLUMN[name]]

    def labels(self, start: int = 0, stop: int | None = None) -> list[str | None]:
        """The ``failure`` label of rows ``start:stop``."""
        return [_LABELS[code] for code in self.failure[start:stop].tolist()]

    def events(self, start: int = 0, stop: int | None = None) -> list[SensorEvent]:
        """Rows ``start:stop`` as `SensorEvent` objects."""
        stop = len(self) if stop is None else stop
        rows = zip(*self.values[start:stop].T.tolist(), strict=True)
        seq = self.seq
        return [
            SensorEvent(car_id, ts, seq, *row, model, label)
            for car_id, ts, model, label, row in zip(
                self.car_ids[start:stop],
                self.ts[start:stop].tolist(),
                self.models[start:stop],
                self.labels(start, stop),
                rows,
                strict=True,
            )
        ]

    def encode(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        """Rows ``start:stop`` as JSON bytes (the raw topic's format)."""
        encode = _ENCODER.encode
        return [encode(event) for event in self.events(start, stop)]


_ENCODER: Final = msgspec.json.Encoder()


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    result: np.ndarray = x * x * (3.0 - 2.0 * x)
    return result


def _ou(x: np.ndarray, noise: np.ndarray, dt: float, tau: float, sigma: float) -> np.ndarray:
    """Advance an Ornstein-Uhlenbeck process (mean 0) exactly by ``dt``."""
    decay = math.exp(-dt / tau)
    result: np.ndarray = x * decay + sigma * math.sqrt(1.0 - decay * decay) * noise
    return result


class Fleet:
    """A fleet of simulated cars, advanced all at once with numpy.

    Attributes:
        modes: the failure modes, in label-code order.

    Args:
        cars: number of cars.
        seed: seed of the random stream; ``None`` draws one (see `seed` to replay it).
        interval: seconds between two events of one car (the simulation step).
        start: event time of the first step, ms since the epoch; ``None``: now.
        failure_rate: expected failures per car per simulated hour.
        repair_after: simulated seconds from a failure's onset until the car is repaired.
        ramp: simulated seconds over which a failure's severity rises from 0 to 1.
        models: vehicle-model mix, name -> weight (or a list of names, equal weights).
        id_prefix: car ids are ``<prefix><index>``, zero-padded.

    Example:
        >>> fleet = Fleet(cars=3, seed=7, start=1_700_000_000_000)
        >>> batch = fleet.step()
        >>> len(batch), batch.seq, batch.car_ids[0]
        (3, 0, 'car-00000')
        >>> [event.seq for event in fleet.step().events()]
        [1, 1, 1]
    """

    modes: Final = FAILURE_MODES

    def __init__(
        self,
        cars: int = 100,
        *,
        seed: int | None = None,
        interval: float = 1.0,
        start: int | None = None,
        failure_rate: float = 0.0,
        repair_after: float = 900.0,
        ramp: float = 45.0,
        models: Mapping[str, float] | Sequence[str] | None = None,
        id_prefix: str = "car-",
    ) -> None:
        if cars < 1:
            raise ValueError("cars must be at least 1")
        if interval <= 0:
            raise ValueError("interval must be positive")
        if failure_rate < 0 or repair_after <= 0 or ramp < 0:
            raise ValueError("failure_rate >= 0, repair_after > 0 and ramp >= 0 are required")
        mix = _mix(models)
        self.cars = cars
        self.seed = int(np.random.default_rng().integers(2**63)) if seed is None else seed
        self.interval = float(interval)
        self.start = int(time.time()) * 1000 if start is None else int(start)
        self.failure_rate = float(failure_rate)
        self.repair_after = float(repair_after)
        self.ramp = float(ramp)
        #: Steps taken so far (the next step's ``seq``).
        self.steps = 0
        #: Failures started so far, per mode.
        self.failures_started = dict.fromkeys(FAILURE_MODES, 0)
        self._rng = np.random.default_rng(self.seed)
        rng = self._rng
        n = cars

        names = list(mix)
        kind = rng.choice(len(names), size=n, p=np.array(list(mix.values())))
        width = max(5, len(str(n - 1)))
        self.car_ids: list[str] = [f"{id_prefix}{i:0{width}d}" for i in range(n)]
        self.models: list[str] = [names[k] for k in kind.tolist()]
        profiles = [PROFILES[name] for name in names]
        self._p: dict[str, np.ndarray] = {
            attr: np.array([getattr(p, attr) for p in profiles], dtype=np.float64)[kind]
            for attr in NUMERIC_ATTRIBUTES
        }
        firmware = np.array(
            [
                p.firmware[int(u * len(p.firmware))]
                for p, u in zip(
                    (profiles[k] for k in kind.tolist()), rng.random(n).tolist(), strict=True
                )
            ]
        )
        self._firmware = firmware
        # Each car reports at its own phase within the interval, in car order.
        phase = (np.arange(n) + rng.random(n)) / n * self.interval
        self._phase_ms = np.rint(phase * 1000.0).astype(np.int64)

        p = self._p
        self._ambient_base = np.clip(rng.normal(16.0, 7.0, n), -15.0, 38.0)
        self._ambient_dev = np.zeros(n)
        self._state = np.full(n, DRIVE, dtype=np.int8)
        self._target = self._cruise_draw(rng.standard_normal(n))
        self._cruise_left = rng.exponential(_RETARGET_EVERY, n)
        self._left = np.zeros(n)
        self._speed = self._target * rng.random(n)
        self._jitter = np.zeros(n)
        self._grade = np.zeros(n)
        self._rough = np.zeros(n)
        self._soc = rng.uniform(35.0, 95.0, n)
        self._soc_goal = np.full(n, 90.0)
        ambient = self._ambient_base
        self._coolant = ambient + rng.uniform(15.0, 35.0, n)
        self._heat = p["heat_base"] + 20.0 * p["heat_per_amp"]
        self._intake = ambient + 1.0
        self._tire_temp = ambient + 0.35 * self._speed
        self._tire_cold = p["tire_pressure"][:, None] + rng.normal(0.0, 0.5, (n, 4))
        self._mode = np.full(n, -1, dtype=np.int8)
        self._onset = np.zeros(n)
        self._wheel = np.zeros(n, dtype=np.int64)

    # ---- public API -------------------------------------------------------------------------

    @property
    def time(self) -> float:
        """Simulated seconds from `start` to the next step."""
        return self.steps * self.interval

    def inject(self, car: int | str, mode: str, wheel: int | None = None) -> None:
        """Start failure ``mode`` on ``car`` now (onset at the next step).

        Args:
            car: car index or car id.
            mode: one of `FAILURE_MODES`.
            wheel: 0-3 for ``tire_pressure`` and ``shock`` (default: the first wheel).
        """
        index = self.car_ids.index(car) if isinstance(car, str) else int(car)
        if mode not in _MODE_CODE:
            raise ValueError(f"unknown failure mode {mode!r}; choose from {FAILURE_MODES}")
        self._mode[index] = _MODE_CODE[mode]
        self._onset[index] = self.time
        self._wheel[index] = 0 if wheel is None else wheel
        self.failures_started[mode] += 1

    def repair(self, car: int | str) -> None:
        """Repair ``car`` now (healthy from the next step)."""
        index = self.car_ids.index(car) if isinstance(car, str) else int(car)
        mask = np.zeros(self.cars, dtype=bool)
        mask[index] = True
        self._repair(mask)

    def severity(self) -> np.ndarray:
        """Severity (0-1) of every car's active failure at the next step; 0 when healthy."""
        return self._severity(self.time)

    def step(self) -> FleetBatch:
        """Advance every car by one interval and return their events."""
        t = self.time
        self._failures(t)
        values = self._advance(self.interval, t)
        batch = FleetBatch(
            car_ids=self.car_ids,
            models=self.models,
            ts=self.start + np.int64(round(t * 1000.0)) + self._phase_ms,
            seq=self.steps,
            values=values,
            failure=self._mode.copy(),
        )
        self.steps += 1
        return batch

    def batches(self, steps: int | None = None) -> Iterator[FleetBatch]:
        """Yield `step` results, ``steps`` of them or forever."""
        taken = 0
        while steps is None or taken < steps:
            yield self.step()
            taken += 1

    def events(self, count: int | None = None) -> Iterator[SensorEvent]:
        """Yield events one by one, ``count`` of them or forever."""
        left = count
        for batch in self.batches():
            yield from batch.events(0, None if left is None else min(left, len(batch)))
            if left is not None:
                left -= len(batch)
                if left <= 0:
                    return

    # ---- internals --------------------------------------------------------------------------

    def _cruise_draw(self, noise: np.ndarray) -> np.ndarray:
        cruise = self._p["cruise_speed"]
        target: np.ndarray = np.clip(
            cruise * np.exp(0.35 * noise), 4.0, np.minimum(2.1 * cruise, 36.0)
        )
        return target

    def _severity(self, t: float) -> np.ndarray:
        progress = np.ones(self.cars) if self.ramp == 0 else (t - self._onset) / self.ramp
        return np.where(self._mode >= 0, _smoothstep(progress), 0.0)

    def _repair(self, mask: np.ndarray) -> None:
        self._mode[mask] = -1
        # Back from the workshop: tire refilled, coolant cooled down.
        self._tire_cold[mask] = self._p["tire_pressure"][mask, None]
        self._coolant[mask] = self._intake[mask] + 15.0

    def _failures(self, t: float) -> None:
        rng = self._rng
        n = self.cars
        repaired = (self._mode >= 0) & (t - self._onset >= self.repair_after)
        if repaired.any():
            self._repair(repaired)
        draw = rng.random(n)
        pick = rng.integers(0, len(FAILURE_MODES), n)
        wheel = rng.integers(0, 4, n)
        if self.failure_rate <= 0:
            return
        chance = -np.expm1(-self.failure_rate * self.interval / 3600.0)
        new = (self._mode < 0) & (draw < chance)
        if new.any():
            self._mode[new] = pick[new]
            self._onset[new] = t
            self._wheel[new] = wheel[new]
            for code, hits in enumerate(np.bincount(pick[new], minlength=len(FAILURE_MODES))):
                self.failures_started[FAILURE_MODES[code]] += int(hits)

    def _advance(self, dt: float, t: float) -> np.ndarray:
        rng = self._rng
        n = self.cars
        p = self._p
        z = rng.standard_normal((24, n))  # every Gaussian draw of this step, in a fixed order
        u = rng.random((3, n))

        sev = self._severity(t)
        mode = self._mode

        def severity_of(name: str) -> np.ndarray:
            return np.where(mode == _MODE_CODE[name], sev, 0.0)

        # -- environment
        self._ambient_dev = _ou(self._ambient_dev, z[0], dt, 1800.0, 1.5)
        ambient = self._ambient_base + self._ambient_dev
        self._grade = np.clip(_ou(self._grade, z[1], dt, 60.0, 0.02), -0.08, 0.08)
        self._rough = _ou(self._rough, z[2], dt, 30.0, 0.2)
        rough = np.clip(1.0 + self._rough, 0.5, 2.5)

        # -- driving cycle
        state = self._state
        speed = self._speed
        driving = state == DRIVE
        self._cruise_left -= dt
        # A traffic stop lasts from the moment the car stands still.
        self._left -= np.where(speed > 0.0, 0.0, dt)
        retarget = driving & (self._cruise_left <= 0)
        fresh_target = self._cruise_draw(z[3])
        fresh_hold = -_RETARGET_EVERY * np.log1p(-u[0])
        to_stop = driving & (speed > 3.0) & (u[1] < -np.expm1(-dt / _STOP_EVERY))
        resume = ((state == STOP) & (self._left <= 0)) | (
            (state == PARK) & (self._soc >= self._soc_goal)
        )
        to_park = driving & (self._soc < _SOC_LOW)
        new_goal = retarget | resume
        self._target = np.where(new_goal, fresh_target, self._target)
        self._cruise_left = np.where(new_goal, fresh_hold, self._cruise_left)
        state = np.where(resume, DRIVE, state)
        state = np.where(to_stop, STOP, state)
        self._left = np.where(to_stop, 5.0 + 20.0 * u[2], self._left)
        state = np.where(to_park, PARK, state)
        self._soc_goal = np.where(to_park, 80.0 + 15.0 * u[2], self._soc_goal)
        self._state = state = state.astype(np.int8)
        driving = state == DRIVE

        self._jitter = _ou(self._jitter, z[4], dt, 10.0, 0.8)
        goal = np.where(driving, np.maximum(self._target + self._jitter, 0.0), 0.0)
        change = (goal - speed) * -np.expm1(-dt / _SPEED_LAG)
        change = np.clip(change, -_BRAKE * dt, p["max_accel"] * dt)
        new_speed = np.maximum(speed + change, 0.0)
        new_speed = np.where((goal <= 0.0) & (new_speed < 0.5), 0.0, new_speed)
        accel = (new_speed - speed) / dt
        old_speed, speed = speed, new_speed
        moving = speed > 0.0
        parked = (state == PARK) & ~moving

        # -- drive train
        air_density = 101_325.0 / (287.05 * (ambient + 273.15))
        resist = p["mass"] * G * (p["rolling"] + self._grade)
        resist += 0.5 * air_density * p["drag_area"] * speed * speed
        resist = np.where(moving, resist, 0.0)
        force = p["mass"] * accel + resist
        max_force = p["max_power"] / np.maximum(speed, _BASE_SPEED)
        # The motor cannot give more: acceleration is what the capped force leaves over.
        limited = force > max_force
        if limited.any():
            force = np.minimum(force, max_force)
            accel = np.where(limited, (force - resist) / p["mass"], accel)
            speed = np.where(limited, np.maximum(old_speed + accel * dt, 0.0), speed)
        self._speed = speed
        fraction = np.clip(force / max_force, 0.0, 1.0)
        throttle = fraction**_PEDAL
        mech = force * speed
        drive_power = np.where(
            mech > 0.0, mech / 0.9, np.maximum(mech * 0.65, -0.4 * p["max_power"])
        )
        aux = 300.0 + 80.0 * np.abs(ambient - 21.0)
        taper = np.clip((100.0 - self._soc) / 20.0, 0.15, 1.0)
        power = np.where(parked, aux - p["charge_power"] * taper, drive_power + aux)

        # -- battery
        s_batt = severity_of("battery")
        resistance = p["resistance"] * (1.0 + 0.015 * np.maximum(20.0 - ambient, 0.0))
        resistance *= 1.0 + 5.0 * s_batt
        ocv = p["pack_voltage"] * (0.87 + 0.16 * self._soc / 100.0) * (1.0 - 0.06 * s_batt)
        # The BMS keeps the terminal voltage above 75 % of open circuit.
        power = np.minimum(power, 0.1875 * ocv * ocv / resistance)
        current = (ocv - np.sqrt(ocv * ocv - 4.0 * resistance * power)) / (2.0 * resistance)
        voltage = ocv - resistance * current
        self._soc = np.clip(self._soc - current * ocv * dt / 36.0 / p["capacity_wh"], 0.0, 100.0)

        # -- thermal
        intake_goal = ambient + 1.0 + 0.12 * (self._coolant - ambient) * np.exp(-speed / 6.0)
        self._intake = intake_goal + (self._intake - intake_goal) * np.exp(-dt / 40.0)
        intake = self._intake
        fan = np.clip((self._coolant - _FAN_ON) / 15.0, 0.0, 1.0)
        fan = np.where(parked & (self._soc < self._soc_goal), 1.0, fan)  # cooling while charging
        intake_density = 101_325.0 / (287.05 * (intake + 273.15))
        flow = 1000.0 * intake_density * p["duct_area"] * (speed + 0.6 + 7.0 * fan)
        abs_current = np.abs(current)
        s_heat = severity_of("overheating")
        # Charging heats only the pack (resistive), driving also the motor and inverter.
        heat = p["heat_base"] + np.where(
            parked,
            0.5 * p["heat_per_amp2"] * abs_current * abs_current,
            p["heat_per_amp"] * abs_current + p["heat_per_amp2"] * abs_current * abs_current,
        )
        # Motor and inverter have their own thermal mass: the coolant sees smoothed losses.
        self._heat = heat + (self._heat - heat) * math.exp(-dt / 30.0)
        # A failing pump / clogged radiator: less heat leaves, and the hot motor adds more.
        conductance = p["cooling"] * (1.0 + flow / 250.0) * (1.0 - 0.6 * s_heat)
        coolant_eq = intake + (self._heat + 600.0 * s_heat) / conductance
        self._coolant = coolant_eq + (self._coolant - coolant_eq) * np.exp(
            -conductance * dt / p["heat_capacity"]
        )

        # -- vibration, wheels, tires
        shaft = 1.0 + 1.7 * severity_of("drive_shaft")
        vibration = p["vibration"] * speed * (1.0 + 0.35 * throttle) * shaft
        vibration += np.where(parked, 0.0, p["idle_vibration"])
        vibration = vibration * (1.0 + 0.05 * z[5]) + 3.0 * z[6]

        wheel_hot = np.arange(4)[None, :] == self._wheel[:, None]
        base_amp = p["suspension"] * rough * (0.02 + 0.016 * speed + 0.04 * np.abs(accel))
        amp = base_amp[:, None] * _WHEEL_GAIN[None, :] * (1.0 + 0.06 * z[7:11].T)
        s_shock = severity_of("shock")[:, None] * wheel_hot
        amp = amp * (1.0 + 1.6 * s_shock) + 0.05 * s_shock * moving[:, None]
        amp += 0.004 * np.abs(z[11:15].T)

        tire_goal = ambient + 0.35 * speed
        self._tire_temp = tire_goal + (self._tire_temp - tire_goal) * np.exp(-dt / 400.0)
        leak = 1.0 - 0.32 * severity_of("tire_pressure")[:, None] * wheel_hot
        warm = ((self._tire_temp + 273.15) / (self._ambient_base + 273.15))[:, None]
        tires = self._tire_cold * leak * warm + 0.12 * z[15:19].T

        # -- sensors
        columns = {
            "coolant_temp": self._coolant + 0.15 * z[19],
            "intake_air_temp": intake + 0.1 * z[20],
            "intake_air_flow_speed": flow * (1.0 + 0.015 * z[21]),
            "battery_percentage": self._soc,
            "battery_voltage": voltage + 0.25 * z[22],
            "current_draw": current * (1.0 + 0.005 * z[23]) + 0.3 * z[23],
            "speed": speed,
            "engine_vibration_amplitude": vibration,
            "throttle_pos": throttle,
            "control_unit_firmware": self._firmware,
        }
        values = np.empty((n, len(FEATURES)))
        for name, column in columns.items():
            values[:, _COLUMN[name]] = column
        for i, name in enumerate(_TIRES):
            values[:, _COLUMN[name]] = tires[:, i]
        for i, name in enumerate(_ACCELS):
            values[:, _COLUMN[name]] = amp[:, i]
        np.clip(values, _LOW, _HIGH, out=values)
        rounded: np.ndarray = np.rint(values * _SCALE) / _SCALE
        return rounded


def _mix(models: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    if models is None:
        weights: dict[str, float] = dict(DEFAULT_MIX)
    elif isinstance(models, Mapping):
        weights = {str(k): float(v) for k, v in models.items()}
    else:
        weights = dict.fromkeys((str(m) for m in models), 1.0)
    unknown = [name for name in weights if name not in PROFILES]
    if unknown or not weights:
        raise ValueError(f"unknown vehicle model(s) {unknown}; choose from {list(PROFILES)}")
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError("model weights must be non-negative and not all zero")
    return {name: w / total for name, w in weights.items()}
