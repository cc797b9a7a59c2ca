"""A second car-fleet simulator, from another physical model, to test detection we did not design.

`Fleet2` writes records of the car-fleet schema (``examples/car-fleet.avsc``: the same 18
features in the same units and ranges, the same ``model`` names, the ``failure`` label set the
same way as `lakeless.fleet.Fleet`), so every model of the car pipeline applies to it, but its
physics, noise, onsets and failure modes differ on purpose:

* Driving: a Markov chain of regimes (urban, rural, highway) with exponential holding times and
  red lights mostly in town; speed follows the regime's goal with a proportional controller.
* Couplings: engine vibration = per-car gain x speed^2 (+ idle), not linear in speed; coolant
  temperature is ambient + a per-car rise x the *load* passed through a first-order filter
  (a per-car time constant of minutes); battery voltage = open-circuit voltage (from the charge)
  minus a per-car internal resistance x current; current = electrical power / voltage.
* Noise: heteroscedastic (current and voltage noise grow with the current) and heavy-tailed
  (Student-t draws on current, coolant and vibration; log-normal wheel accelerometers, the noisy
  signals of a healthy car).
* Onsets: a step (``vibration_decoupled``, ``coolant_stuck``), a ramp (``battery_sag`` over
  5 minutes, ``tire_leak`` over 10), intermittent bursts (``accelerometer_dropout``).

Failure modes (`MODES`), each labelled from its onset until the repair, like `Fleet`:

* ``vibration_decoupled`` (relation breaks, every value in range): the vibration no longer
  follows the car's speed but a phantom speed wandering around the car's cruising speed, through
  the car's own gain: a healthy amplitude at the wrong moment (strong while standing, weak when
  fast).
* ``coolant_stuck`` (relation breaks, every value in range): the coolant stops following the
  load and settles at a level inside the car's healthy band (a stuck thermostat or sensor).
* ``accelerometer_dropout``: one wheel's accelerometer (noisy when healthy) drops to a tenth of
  its reading, in bursts of tens of seconds.
* ``battery_sag``: the internal resistance rises up to 4x: the voltage sags more with current.
* ``tire_leak``: one tire loses up to 25 % of its pressure, linearly over ten minutes.

Everything is drawn from one `numpy.random.Generator` in a fixed order: a seed gives the same
stream, whatever consumes it.

Example:
    >>> fleet = Fleet2(cars=4, seed=1, start=0, failure_rate=2.0)
    >>> win = collect(fleet, steps=10)
    >>> win.values.shape, win.car_ids[0], int(win.ts[4] - win.ts[0]), len(win.labels)
    ((40, 18), 'car-00000', 1000, 40)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from lakeless.fleet import FleetBatch
from lakeless.testing.models import FEATURES

__all__ = ["MODES", "RELATION_MODES", "Fleet2", "Fleet2Batch", "SimWindow", "collect"]

#: Failure modes of `Fleet2`, in label-code order.
MODES: Final = (
    "vibration_decoupled",
    "coolant_stuck",
    "accelerometer_dropout",
    "battery_sag",
    "tire_leak",
)
#: The modes that break a relation between signals while every signal stays in its range.
RELATION_MODES: Final = ("vibration_decoupled", "coolant_stuck")

_CODE: Final = {name: i for i, name in enumerate(MODES)}
_COL: Final = {name: i for i, name in enumerate(FEATURES)}
_TIRES: Final = [_COL[n] for n in FEATURES if n.startswith("tire_pressure_")]
_ACCELS: Final = [_COL[n] for n in FEATURES if n.startswith("accelerometer_")]
#: Ramp (s) of the ramped modes; 0: a step.
_RAMP: Final = {"battery_sag": 300.0, "tire_leak": 600.0}
_REGIME_SPEED: Final = np.array([0.55, 1.05, 1.6])  # urban, rural, highway x cruise speed
_REGIME_HOLD: Final = 150.0  # s, mean time in a regime
_LIGHT_EVERY: Final = np.array([120.0, 900.0, 1e9])  # s between red lights, per regime
_SOC_LOW: Final = 15.0
_SOC_FULL: Final = 85.0
_AMBIENT: Final = 14.0


@dataclass(frozen=True)
class _Model:
    mass: float
    aero: float  # 0.5 rho CdA, N/(m/s)^2
    max_power: float
    cruise: float
    pack_voltage: float
    resistance: float
    capacity_wh: float
    charge_power: float
    vib_gain: float  # um per (m/s)^2
    idle_vib: float
    coolant_rise: float  # degC at full load
    coolant_tau: float  # s
    tire: float
    duct: float
    suspension: float
    firmware: tuple[float, ...]


# Other constants than `lakeless.fleet`'s profiles, under the same model names.
_MODELS: Final[dict[str, _Model]] = {
    "e-sedan": _Model(
        1900, 0.33, 180e3, 18, 400, 0.09, 75e3, 110e3, 4.5, 20, 48, 120, 42, 0.013, 1.0,
        (2031.0, 2040.0, 2044.0),
    ),
    "e-suv": _Model(
        2600, 0.52, 260e3, 19, 760, 0.16, 95e3, 180e3, 5.0, 25, 52, 160, 38, 0.014, 0.85,
        (3012.0, 3020.0),
    ),
    "e-van": _Model(
        3200, 0.78, 140e3, 14, 350, 0.10, 70e3, 80e3, 7.5, 30, 58, 180, 55, 0.014, 1.3,
        (1107.0, 1110.0),
    ),
    "hybrid-hatch": _Model(
        1400, 0.39, 90e3, 15, 300, 0.12, 14e3, 7e3, 6.0, 60, 42, 100, 35, 0.012, 1.1,
        (512.0, 520.0, 522.0),
    ),
}  # fmt: skip
_MIX: Final = {"e-sedan": 0.4, "e-suv": 0.25, "e-van": 0.2, "hybrid-hatch": 0.15}


@dataclass(frozen=True)
class Fleet2Batch(FleetBatch):
    """A `lakeless.fleet.FleetBatch` whose ``failure`` codes index `MODES`."""

    modes: tuple[str, ...] = MODES

    def labels(self, start: int = 0, stop: int | None = None) -> list[str | None]:
        """The ``failure`` label of rows ``start:stop``."""
        return [None if c < 0 else self.modes[c] for c in self.failure[start:stop].tolist()]


class Fleet2:
    """Cars of another physical model (see the module docstring), advanced all at once.

    Args:
        cars: number of cars.
        seed: seed of the random stream.
        interval: seconds between two events of one car.
        start: event time of the first step, ms since the epoch.
        failure_rate: expected failures per car per simulated hour.
        repair_after: simulated seconds from a failure's onset until the repair.
        id_prefix: car ids are ``<prefix><index>``, zero-padded.
    """

    modes: Final = MODES

    def __init__(
        self,
        cars: int = 100,
        *,
        seed: int = 0,
        interval: float = 1.0,
        start: int = 0,
        failure_rate: float = 0.0,
        repair_after: float = 900.0,
        id_prefix: str = "car-",
    ) -> None:
        if cars < 1 or interval <= 0 or failure_rate < 0 or repair_after <= 0:
            raise ValueError("cars >= 1, interval > 0, failure_rate >= 0, repair_after > 0")
        self.cars, self.seed, self.interval = cars, seed, float(interval)
        self.start, self.failure_rate, self.repair_after = int(start), failure_rate, repair_after
        self.steps = 0
        rng = self._rng = np.random.default_rng(seed)
        n = cars
        names = list(_MIX)
        kind = rng.choice(len(names), size=n, p=np.array(list(_MIX.values())))
        width = max(5, len(str(n - 1)))
        self.car_ids = [f"{id_prefix}{i:0{width}d}" for i in range(n)]
        self.models = [names[k] for k in kind.tolist()]
        m = [_MODELS[name] for name in self.models]

        def per_car(attr: str, spread: float = 0.0) -> np.ndarray:
            base = np.array([getattr(x, attr) for x in m], dtype=np.float64)
            return base * np.exp(spread * rng.standard_normal(n))

        self._mass, self._aero = per_car("mass", 0.05), per_car("aero", 0.05)
        self._max_power, self._cruise = per_car("max_power"), per_car("cruise", 0.1)
        self._pack, self._r = per_car("pack_voltage"), per_car("resistance", 0.1)
        self._capacity, self._charge = per_car("capacity_wh"), per_car("charge_power")
        self._gain, self._idle = per_car("vib_gain", 0.15), per_car("idle_vib", 0.2)
        self._rise, self._tau = per_car("coolant_rise", 0.1), per_car("coolant_tau", 0.15)
        self._duct, self._susp = per_car("duct", 0.05), per_car("suspension", 0.1)
        self._tire_cold = per_car("tire")[:, None] * (1.0 + 0.015 * rng.standard_normal((n, 4)))
        self._firmware = np.array([x.firmware[int(u * len(x.firmware))] for x, u in zip(
            m, rng.random(n).tolist(), strict=True)])  # fmt: skip
        self._ambient = _AMBIENT + 6.0 * rng.standard_normal(n)
        self._phase = np.sort(rng.integers(0, 1000, n))  # ms offset in a step, in car order

        self._regime = rng.integers(0, 3, n)
        self._speed = self._cruise * rng.random(n)
        self._stop_left = np.zeros(n)
        # Start near the steady state: a fifth of the cars parked and charging.
        self._soc = _SOC_LOW + (_SOC_FULL - _SOC_LOW) * rng.random(n)
        self._parked = rng.random(n) < 0.2
        self._jitter = np.zeros(n)
        self._load = 0.2 * rng.random(n)  # filtered load, 0..1
        self._coolant = self._ambient + 20.0 + self._rise * self._load
        self._intake = self._ambient + 2.0
        self._tire_warm = np.zeros(n)
        self._rough = np.zeros(n)
        self._ghost = self._cruise.copy()
        self._mode = np.full(n, -1, dtype=np.int64)
        self._onset = np.zeros(n)
        self._wheel = np.zeros(n, dtype=np.int64)
        self._stuck_level = np.zeros(n)
        self._burst = np.zeros(n, dtype=bool)
        #: Failures started so far, per mode.
        self.failures_started = dict.fromkeys(MODES, 0)

    def step(self) -> Fleet2Batch:
        """Advance every car by one interval and return their events."""
        t = self.steps * self.interval
        self._failures(t)
        values = self._advance(self.interval, t)
        ts = self.start + round(t * 1000) + (self._phase * self.interval).astype(np.int64)
        batch = Fleet2Batch(
            car_ids=self.car_ids,
            models=self.models,
            ts=ts,
            seq=self.steps,
            values=values,
            failure=self._mode.copy(),
        )
        self.steps += 1
        return batch

    # ---- internals --------------------------------------------------------------------------

    def _failures(self, t: float) -> None:
        rng = self._rng
        n = self.cars
        repaired = (self._mode >= 0) & (t - self._onset >= self.repair_after)
        self._mode[repaired] = -1
        draw, pick, wheel, level = rng.random(n), rng.integers(0, len(MODES), n), *(
            rng.integers(0, 4, n), rng.random(n))  # fmt: skip
        chance = -math.expm1(-self.failure_rate * self.interval / 3600.0)
        new = (self._mode < 0) & (draw < chance)
        self._mode[new] = pick[new]
        self._onset[new] = t
        self._wheel[new] = wheel[new]
        # The level a stuck coolant settles at: between its reading at onset and its level at
        # a typical load (both healthy values of this car), whatever the load does next.
        typical = self._ambient + 20.0 + self._rise * (0.1 + 0.2 * level)
        band = 0.5 * (self._coolant + typical)
        self._stuck_level = np.where(new, band, self._stuck_level)
        self._burst &= ~new
        for code in pick[new].tolist():
            self.failures_started[MODES[code]] += 1

    def _severity(self, name: str, t: float) -> np.ndarray:
        on = self._mode == _CODE[name]
        ramp = _RAMP.get(name, 0.0)
        if ramp == 0.0:
            step: np.ndarray = on.astype(np.float64)
            return step
        return np.where(on, np.clip((t - self._onset) / ramp, 0.0, 1.0), 0.0)

    def _advance(self, dt: float, t: float) -> np.ndarray:
        rng = self._rng
        n = self.cars
        z = rng.standard_normal((16, n))
        heavy = rng.standard_t(3, (4, n))
        u = rng.random((4, n))

        # -- driving: regimes, red lights, charging stops
        switch = u[0] < -math.expm1(-dt / _REGIME_HOLD)
        self._regime = np.where(switch, rng.integers(0, 3, n), self._regime)
        light = (~self._parked) & (self._stop_left <= 0) & (self._speed > 2.0)
        light &= u[1] < -np.expm1(-dt / _LIGHT_EVERY[self._regime])
        self._stop_left = np.where(light, 10.0 + 40.0 * u[2], self._stop_left - dt)
        self._parked = np.where(self._soc < _SOC_LOW, True, self._parked)
        self._parked &= self._soc < _SOC_FULL
        self._jitter = self._jitter * math.exp(-dt / 20.0) + 0.06 * z[0]
        goal = self._cruise * _REGIME_SPEED[self._regime] * (1.0 + self._jitter)
        goal = np.where(self._parked | (self._stop_left > 0), 0.0, np.clip(goal, 0.0, 40.0))
        accel = np.clip(0.25 * (goal - self._speed), -3.0, 2.2)
        speed = np.maximum(self._speed + accel * dt, 0.0)
        speed = np.where((goal == 0.0) & (speed < 0.3), 0.0, speed)
        accel = (speed - self._speed) / dt
        self._speed = speed

        # -- power, battery
        power = self._mass * (accel + 0.12) * speed + self._aero * speed**3
        power = np.where(speed > 0, power, 0.0)
        elec = np.where(power > 0, power / 0.92, 0.6 * power) + 500.0
        charging = self._parked & (speed == 0)
        elec = np.where(charging, -self._charge, elec)
        s_batt = self._severity("battery_sag", t)
        r = self._r * (1.0 + 3.0 * s_batt)
        ocv = self._pack * (0.86 + 0.2 * self._soc / 100.0)
        elec = np.minimum(elec, 0.2 * ocv * ocv / r)  # the pack limits the power it gives
        current = (ocv - np.sqrt(np.maximum(ocv * ocv - 4.0 * r * elec, 0.0))) / (2.0 * r)
        voltage = ocv - r * current
        self._soc = np.clip(self._soc - current * ocv * dt / 36.0 / self._capacity, 0.0, 100.0)
        load = np.clip(np.abs(power) / self._max_power, 0.0, 1.0)
        throttle = np.where(power > 0, load, 0.0) ** 0.75

        # -- thermal: coolant follows the load through a first-order filter
        decay = np.exp(-dt / self._tau)
        heat_in = np.where(charging, 0.3, load)
        self._load = heat_in + (self._load - heat_in) * decay
        follow = self._ambient + 20.0 + self._rise * self._load
        stuck = self._severity("coolant_stuck", t) > 0
        coolant_goal = np.where(stuck, self._stuck_level, follow)
        self._coolant = coolant_goal + (self._coolant - coolant_goal) * math.exp(-dt / 45.0)
        intake_goal = self._ambient + 2.0 + 0.08 * (self._coolant - self._ambient) * np.exp(
            -speed / 8.0)  # fmt: skip
        self._intake = intake_goal + (self._intake - intake_goal) * math.exp(-dt / 30.0)
        flow = 1000.0 * 1.2 * self._duct * (speed + 1.0 + 4.0 * charging) * (1 + 0.03 * z[1])

        # -- vibration: gain x speed^2, heavy-tailed multiplicative noise
        self._ghost = self._ghost * math.exp(-dt / 60.0) + (1 - math.exp(-dt / 60.0)) * (
            self._cruise + 8.0 * z[2])  # fmt: skip
        self._ghost = np.clip(self._ghost, 0.0, 1.6 * self._cruise)
        decoupled = self._severity("vibration_decoupled", t) > 0
        vib_speed = np.where(decoupled, self._ghost, speed)
        running = ~charging
        vibration = self._gain * vib_speed**2 + self._idle * running
        vibration *= np.exp(0.06 * np.clip(heavy[0], -8, 8))

        # -- wheels: log-normal accelerometers (noisy when healthy), tires
        self._rough = self._rough * math.exp(-dt / 40.0) + 0.08 * z[3]
        rough = np.clip(1.0 + self._rough, 0.4, 2.5)
        base = self._susp * rough * (0.03 + 0.011 * speed + 0.03 * np.abs(accel))
        amp = base[:, None] * np.exp(0.25 * z[4:8].T)
        dropping = self._mode == _CODE["accelerometer_dropout"]
        # Intermittent: bursts of about 30 s on, 30 s off.
        flip = u[3] < -math.expm1(-dt / 30.0)
        self._burst = np.where(dropping, self._burst ^ flip, False)
        self._burst = np.where(dropping & (self._onset == t), True, self._burst)
        wheel_hot = np.arange(4)[None, :] == self._wheel[:, None]
        amp = np.where(self._burst[:, None] & wheel_hot, 0.1 * amp, amp)
        warm_goal = 0.06 * speed
        self._tire_warm = warm_goal + (self._tire_warm - warm_goal) * math.exp(-dt / 300.0)
        leak = 1.0 - 0.25 * self._severity("tire_leak", t)[:, None] * wheel_hot
        tires = self._tire_cold * leak * (1.0 + self._tire_warm[:, None] / 30.0)
        tires = tires + 0.1 * z[8:12].T

        cur_noise = (0.5 + 0.02 * np.abs(current)) * np.clip(heavy[1], -10, 10)
        values = np.empty((n, len(FEATURES)))
        values[:, _COL["coolant_temp"]] = self._coolant + 0.25 * np.clip(heavy[2], -10, 10)
        values[:, _COL["intake_air_temp"]] = self._intake + 0.15 * z[12]
        values[:, _COL["intake_air_flow_speed"]] = flow
        values[:, _COL["battery_percentage"]] = self._soc
        values[:, _COL["battery_voltage"]] = voltage + (0.2 + 0.004 * np.abs(current)) * z[13]
        values[:, _COL["current_draw"]] = current + cur_noise
        values[:, _COL["speed"]] = speed
        values[:, _COL["engine_vibration_amplitude"]] = vibration
        values[:, _COL["throttle_pos"]] = np.clip(throttle + 0.005 * z[14], 0.0, 1.0)
        values[:, _TIRES] = tires
        values[:, _ACCELS] = amp
        values[:, _COL["control_unit_firmware"]] = self._firmware
        np.clip(values, _LOW, _HIGH, out=values)
        rounded: np.ndarray = np.round(values, 3)
        return rounded


class _Stepper(Protocol):
    def step(self) -> FleetBatch: ...


@dataclass(frozen=True)
class SimWindow:
    """Consecutive steps of a fleet, row-wise in step then car order.

    Attributes:
        values: ``[rows, 18]`` features in the schema's order.
        labels: failure label per row (``None`` = healthy).
        car_ids: car id per row.
        ts: event time per row, ms since the epoch.
        models: vehicle model per row.
    """

    values: np.ndarray
    labels: list[str | None]
    car_ids: list[str]
    ts: np.ndarray
    models: list[str]

    def __len__(self) -> int:
        return len(self.ts)


def collect(fleet: _Stepper, steps: int) -> SimWindow:
    """The next ``steps`` steps of ``fleet`` (a `Fleet2` or a `lakeless.fleet.Fleet`)."""
    batches = [fleet.step() for _ in range(steps)]
    return SimWindow(
        values=np.concatenate([b.values for b in batches]),
        labels=[label for b in batches for label in b.labels()],
        car_ids=[c for b in batches for c in b.car_ids],
        ts=np.concatenate([b.ts for b in batches]),
        models=[m for b in batches for m in b.models],
    )


def _bounds() -> tuple[np.ndarray, np.ndarray]:
    from lakeless.examples import car_fleet

    specs = car_fleet().features
    return np.array([f.min for f in specs]), np.array([f.max for f in specs])


_LOW, _HIGH = _bounds()
