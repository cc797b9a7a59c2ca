"""A park of simulated industrial pumps: the second example pipeline's devices (``pumps.avsc``).

Another physical model than the cars', on purpose, so the example exercises a pipeline shaped
unlike the car fleet. Each pump runs a variable-speed drive on a slowly wandering demand:

* shaft speed follows demand (centrifugal pumps 2950 rpm rated, boosters 1450);
* affinity laws: flow ~ speed x valve opening, head ~ speed², so discharge pressure =
  suction pressure + rated head x (speed)² x (1 - 0.25 (flow/rated)²);
* hydraulic power = flow x head; motor current = power / efficiency / voltage;
* the bearing warms with speed and load, with a thermal lag of minutes;
* housing vibration grows with speed²; sensors add noise, values are clipped to the schema's
  ranges and rounded.

Faults (label ``fault`` from onset until repair; severity ramps in over ``ramp`` seconds):

* ``cavitation``: the suction pressure sags, flow and current flicker, vibration turns noisy;
* ``bearing_wear``: vibration and bearing temperature creep up while the hydraulics stay normal;
* ``seal_leak``: part of the flow leaks back, so delivered flow and discharge pressure fall for
  the same current (efficiency drops);
* ``impeller_clog``: flow falls and current falls with it, discharge pressure rises slightly.

There is no sequence field: readings are identified by pump and time.

Example:
    >>> park = PumpFleet(4, seed=3, start=1_700_000_000_000)
    >>> batch = park.step()
    >>> len(batch), batch.car_ids[0], batch.events()[0].pump_type in ("centrifugal", "booster")
    (4, 'pump-0000', True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np

from lakeless.examples import example_schema
from lakeless.schema import event_type

__all__ = ["PUMP_FAULTS", "PumpBatch", "PumpFleet"]

SCHEMA: Final = example_schema("pumps")
PumpReading: Any = event_type(SCHEMA)
#: The failure modes, in label order.
PUMP_FAULTS: Final[tuple[str, ...]] = tuple(SCHEMA.field("fault").symbols or ())
_FEATURES: Final = SCHEMA.feature_names
_LOW: Final = np.array([SCHEMA.field(n).min for n in _FEATURES], dtype=np.float64)
_HIGH: Final = np.array([SCHEMA.field(n).max for n in _FEATURES], dtype=np.float64)
_DECIMALS: Final = np.array([1, 3, 3, 2, 2, 3, 0], dtype=np.float64)
_SCALE: Final = 10.0**_DECIMALS
_SITES: Final = ("plant-a", "plant-b", "plant-c")
_ENCODER: Final = msgspec.json.Encoder()
assert PumpReading.__struct_fields__ == (
    "pump_id",
    "timestamp",
    "site",
    "pump_type",
    *_FEATURES,
    "fault",
)


@dataclass(frozen=True)
class PumpBatch:
    """One step of the park: every pump's reading at one instant (pump order = time order).

    Attributes:
        car_ids: the pump ids (the sinks key records by them).
        sites: the site of each pump.
        kinds: the pump type of each pump.
        ts: event time per row, ms since the epoch.
        values: the 7 features, ``(n, 7)`` float64, in the schema's order.
        failure: fault code per row (index into `PUMP_FAULTS`; -1 when healthy).
    """

    car_ids: Sequence[str]
    sites: Sequence[str]
    kinds: Sequence[str]
    ts: np.ndarray
    values: np.ndarray
    failure: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def labels(self, start: int = 0, stop: int | None = None) -> list[str | None]:
        """The ``fault`` label of rows ``start:stop``."""
        return [PUMP_FAULTS[c] if c >= 0 else None for c in self.failure[start:stop].tolist()]

    def events(self, start: int = 0, stop: int | None = None) -> list[Any]:
        """Rows ``start:stop`` as event objects of the pumps schema."""
        stop = len(self) if stop is None else stop
        rows = self.values[start:stop].tolist()
        return [
            PumpReading(key, ts, site, kind, *row[:6], int(row[6]), label)
            for key, ts, site, kind, row, label in zip(
                self.car_ids[start:stop],
                self.ts[start:stop].tolist(),
                self.sites[start:stop],
                self.kinds[start:stop],
                rows,
                self.labels(start, stop),
                strict=True,
            )
        ]

    def encode(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        """Rows ``start:stop`` as JSON bytes (the raw topic's format)."""
        return [_ENCODER.encode(event) for event in self.events(start, stop)]


class PumpFleet:
    """A park of pumps advanced all at once with numpy (the interface of `lakeless.fleet.Fleet`).

    Args:
        cars: number of pumps.
        seed: random seed (``None``: drawn; see `seed`).
        interval: seconds between two readings of one pump.
        start: event time of the first step, ms since the epoch (``None``: now).
        failure_rate: expected faults per pump per simulated hour.
        repair_after: simulated seconds from a fault's onset until repair.
        ramp: simulated seconds over which a fault's severity rises to 1.
    """

    #: The failure modes (the simulator counts labels by them).
    modes: Final = PUMP_FAULTS

    def __init__(
        self,
        cars: int = 20,
        *,
        seed: int | None = None,
        interval: float = 1.0,
        start: int | None = None,
        failure_rate: float = 0.0,
        repair_after: float = 900.0,
        ramp: float = 60.0,
        **_ignored: Any,
    ) -> None:
        if cars < 1 or interval <= 0 or failure_rate < 0 or repair_after <= 0 or ramp < 0:
            raise ValueError("cars >= 1, interval > 0, failure_rate >= 0, repair_after > 0")
        self.cars = cars
        self.seed = int(np.random.default_rng().integers(2**63)) if seed is None else seed
        self.interval = float(interval)
        self.start = int(time.time()) * 1000 if start is None else int(start)
        self.failure_rate = float(failure_rate)
        self.repair_after = float(repair_after)
        self.ramp = float(ramp)
        self.steps = 0
        self.failures_started = dict.fromkeys(PUMP_FAULTS, 0)
        rng = self._rng = np.random.default_rng(self.seed)
        n = cars
        width = max(4, len(str(n - 1)))
        self.car_ids = [f"pump-{i:0{width}d}" for i in range(n)]
        booster = rng.random(n) < 0.3
        self.kinds = ["booster" if b else "centrifugal" for b in booster.tolist()]
        self.sites = [_SITES[i % len(_SITES)] for i in range(n)]
        self._rated_rpm = np.where(booster, 1450.0, 2950.0)
        self._rated_flow = np.where(booster, 220.0, 120.0) * rng.uniform(0.9, 1.1, n)  # m3/h
        self._rated_head = np.where(booster, 4.0, 7.5) * rng.uniform(0.9, 1.1, n)  # bar
        self._efficiency = rng.uniform(0.62, 0.75, n)
        self._volts = 400.0
        self._demand = rng.uniform(0.7, 0.95, n)
        self._valve = rng.uniform(0.75, 0.95, n)
        self._tank = rng.uniform(0.9, 1.6, n)  # suction pressure, bar
        self._bearing = 25.0 + rng.uniform(10, 20, n)
        self._vib_base = rng.uniform(1.0, 1.8, n)
        self._mode = np.full(n, -1)
        self._onset = np.zeros(n)
        self._phase_ms = np.sort(rng.integers(0, int(self.interval * 1000), n))

    @property
    def time(self) -> float:
        """Simulated seconds since `start`."""
        return self.steps * self.interval

    def step(self) -> PumpBatch:
        """Advance every pump by one interval and return their readings."""
        rng, n, dt, t = self._rng, self.cars, self.interval, self.time
        self._faults(t)
        severity = np.where(
            self._mode >= 0, np.clip((t - self._onset) / max(self.ramp, 1e-9), 0.0, 1.0), 0.0
        )

        def hit(fault: str) -> np.ndarray:
            return np.where(self._mode == PUMP_FAULTS.index(fault), severity, 0.0)

        cav, wear, leak, clog = (hit(f) for f in PUMP_FAULTS)
        self._demand = np.clip(self._demand + _ou_step(rng, n, dt, 600.0, 0.05), 0.45, 1.0)
        self._valve = np.clip(self._valve + _ou_step(rng, n, dt, 300.0, 0.03), 0.5, 1.0)
        self._tank = np.clip(self._tank + _ou_step(rng, n, dt, 900.0, 0.05), 0.6, 2.0)
        speed = self._demand  # fraction of the rated speed
        rpm = self._rated_rpm * speed
        flow = self._rated_flow * speed * self._valve * (1 - 0.55 * clog) * (1 - 0.35 * leak)
        flow *= 1 - 0.25 * cav * rng.random(n)  # flicker
        ratio = flow / self._rated_flow
        head = self._rated_head * speed**2 * (1 - 0.25 * ratio**2) * (1 + 0.12 * clog)
        head *= 1 - 0.3 * leak
        suction = self._tank - 1.1 * cav
        discharge = suction + head
        power = (self._rated_flow * speed * self._valve / 3600.0) * (head * 1e5) / 1000.0  # kW
        power *= 1 - 0.5 * clog
        current = power * 1000.0 / (self._efficiency * (1 - 0.25 * leak) * self._volts * 1.73)
        current *= 1 + 0.25 * cav * (rng.random(n) - 0.5)
        target = 28.0 + 22.0 * speed**2 + 35.0 * wear
        self._bearing += (target - self._bearing) * (1 - math.exp(-dt / 240.0))
        vibration = self._vib_base * (0.3 + speed**2) * (1 + 2.5 * wear) + 3.0 * cav * rng.random(n)
        noise = rng.normal(0.0, 1.0, (n, 7)) * np.array([0.8, 0.04, 0.02, 0.4, 0.15, 0.06, 6.0])
        values = np.stack(
            [flow, discharge, suction, current, self._bearing, vibration, rpm], axis=1
        )
        values = np.clip(values + noise, _LOW, _HIGH)
        values = np.round(values * _SCALE) / _SCALE
        batch = PumpBatch(
            car_ids=self.car_ids,
            sites=self.sites,
            kinds=self.kinds,
            ts=self.start + np.int64(round(t * 1000.0)) + self._phase_ms,
            values=values,
            failure=self._mode.copy(),
        )
        self.steps += 1
        return batch

    def _faults(self, t: float) -> None:
        mode = self._mode
        repaired = (mode >= 0) & (t - self._onset >= self.repair_after)
        mode[repaired] = -1
        if self.failure_rate <= 0:
            return
        p = self.failure_rate * self.interval / 3600.0
        starts = (mode < 0) & (self._rng.random(self.cars) < p)
        if starts.any():
            codes = self._rng.integers(0, len(PUMP_FAULTS), int(starts.sum()))
            mode[starts] = codes
            self._onset[starts] = t
            for code in codes.tolist():
                self.failures_started[PUMP_FAULTS[code]] += 1


def _ou_step(rng: np.random.Generator, n: int, dt: float, tau: float, sigma: float) -> np.ndarray:
    """One step of an Ornstein-Uhlenbeck increment around the current value (mean-free)."""
    step: np.ndarray = sigma * math.sqrt(2 * dt / tau) * rng.normal(0.0, 1.0, n)
    return step
