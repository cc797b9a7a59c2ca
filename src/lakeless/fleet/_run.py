"""The simulate stage: settings, the paced `Simulator.run` loop and its statistics.

Simulated time advances ``speedup`` times faster than wall time (``0``: as fast as the sink
takes events). Pacing only decides *when* events are sent; *what* is sent depends only on the
seed and the `FleetSettings`, so a run can be replayed exactly.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lakeless.config import Settings, load_settings
from lakeless.fleet._fleet import Fleet
from lakeless.fleet._profiles import FAILURE_MODES
from lakeless.fleet._sinks import (
    BaseEventSink,
    KafkaSink,
    MqttSink,
    NullSink,
    StreamSink,
)
from lakeless.lifecycle import Stopper, stop_on_signals
from lakeless.schema import SensorEvent

logger = logging.getLogger(__name__)

Destination = Literal["mqtt", "kafka", "stdout", "null"]


class FleetSettings(BaseModel):
    """What to simulate and how fast (one ``lakeless simulate`` invocation).

    Attributes:
        cars: number of cars.
        interval: seconds of simulated time between two events of one car.
        duration: simulated seconds to run; ``None``: until stopped.
        failure_rate: expected failures per car per simulated hour.
        repair_after: simulated seconds from a failure's onset until the car is repaired.
        ramp: simulated seconds over which a failure's severity rises from 0 to 1.
        speedup: simulated seconds per wall second; 0 runs as fast as possible.
        start: event time of the first step, ms since the epoch; ``None``: now.
        send_from: event time (ms) before which steps are simulated but not sent, so a run can
            continue exactly where an earlier run with the same seed and ``start`` stopped;
            pacing starts there.
        seed: random seed; ``None`` draws one (reported in the statistics).
        to: destination: ``mqtt``, ``kafka`` (topic ``topics.raw``), ``stdout`` (JSON lines)
            or ``null`` (encode and drop; measures generation).
        models: vehicle models to draw from (equal weights); ``None``: the default mix.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cars: int = Field(default=100, ge=1)
    interval: float = Field(default=1.0, gt=0)
    duration: float | None = Field(default=None, gt=0)
    failure_rate: float = Field(default=0.5, ge=0)
    repair_after: float = Field(default=900.0, gt=0)
    ramp: float = Field(default=45.0, ge=0)
    speedup: float = Field(default=1.0, ge=0)
    start: int | None = Field(default=None, ge=0)
    send_from: int | None = Field(default=None, ge=0)
    seed: int | None = Field(default=None, ge=0)
    to: Destination = "mqtt"
    models: tuple[str, ...] | None = None

    def fleet(self) -> Fleet:
        """A fresh `Fleet` for these settings."""
        return Fleet(
            self.cars,
            seed=self.seed,
            interval=self.interval,
            start=self.start,
            failure_rate=self.failure_rate,
            repair_after=self.repair_after,
            ramp=self.ramp,
            models=self.models,
        )


@dataclass
class SimulationStats:
    """What a run did.

    Attributes:
        events: events handed to the sink.
        delivered: events the destination acknowledged (MQTT PUBACK, Kafka delivery report).
        failed: events the destination reported lost.
        pending: events still unacknowledged when the run gave up waiting.
        steps: fleet steps taken.
        seed: the seed (replay the run with it).
        first_ts: event time of the first step, ms since the epoch.
        sim_seconds: simulated time covered.
        wall_seconds: wall time of the run.
        stopped_by: ``duration``, ``count``, ``timeout`` or ``signal``.
        healthy: events without a failure label.
        labelled: events per failure label.
        failures_started: failures injected, per mode.
    """

    events: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    steps: int = 0
    seed: int = 0
    first_ts: int = 0
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    stopped_by: str = ""
    healthy: int = 0
    labelled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_MODES, 0))
    failures_started: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(FAILURE_MODES, 0)
    )

    @property
    def rate(self) -> float:
        """Events per wall second."""
        return self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``rate``."""
        return {**asdict(self), "rate": round(self.rate, 1)}


def make_sink(to: Destination, settings: Settings) -> BaseEventSink:
    """The sink for a destination name."""
    if to == "mqtt":
        return MqttSink(settings.mqtt)
    if to == "kafka":
        return KafkaSink(settings.kafka, settings.topics.raw)
    if to == "stdout":
        return StreamSink(sys.stdout.buffer)
    return NullSink()


class Simulator:
    """Runs a fleet into a sink, paced, until a duration, count, timeout or signal.

    Args:
        fleet: what to simulate.
        settings: connection settings (default: `lakeless.config.load_settings`).
        sink: destination; default from ``fleet.to``.
        chunk: events handed to the sink at once (and the pacing granularity).
        flush_timeout: seconds to wait for outstanding acknowledgements at the end.
        progress_every: wall seconds between progress log lines.

    Example:
        >>> from lakeless.fleet import FleetSettings, MemorySink
        >>> sink = MemorySink()
        >>> simulator = Simulator(FleetSettings(cars=5, seed=1, speedup=0), sink=sink)
        >>> stats = simulator.run(count=12)
        >>> stats.events, stats.stopped_by, [e.seq for e in sink.events][-2:]
        (12, 'count', [2, 2])
    """

    def __init__(
        self,
        fleet: FleetSettings,
        settings: Settings | None = None,
        sink: BaseEventSink | None = None,
        *,
        chunk: int = 1000,
        flush_timeout: float = 30.0,
        progress_every: float = 10.0,
    ) -> None:
        self.fleet_settings = fleet
        self.settings = settings
        self.sink = sink
        self.chunk = max(1, chunk)
        self.flush_timeout = flush_timeout
        self.progress_every = progress_every
        self._stopper = Stopper()

    def stop(self) -> None:
        """Ask a running `run` to stop after the current chunk (thread- and signal-safe)."""
        self._stopper.request_stop("stop()")

    def run(self, count: int | None = None, timeout: float | None = None) -> SimulationStats:
        """Simulate until the duration is covered, ``count`` events or ``timeout`` wall seconds.

        SIGTERM and SIGINT stop the run cleanly when it runs in the main thread; outstanding
        messages are flushed in every case.
        """
        config = self.fleet_settings
        fleet = config.fleet()
        sink = self.sink
        if sink is None:
            sink = make_sink(config.to, self.settings or load_settings())
        stats = SimulationStats(seed=fleet.seed, first_ts=fleet.start)
        self._stopper = Stopper()
        steps = None if config.duration is None else math.ceil(config.duration / config.interval)
        labelled = np.zeros(len(FAILURE_MODES) + 1, dtype=np.int64)
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        sink.open()
        try:
            with stop_on_signals(self._stopper):
                stats.stopped_by = self._loop(
                    fleet, sink, steps, count, deadline, labelled, started
                )
        finally:
            stats.pending = sink.flush(self.flush_timeout)
            sink.close()
            stats.wall_seconds = time.monotonic() - started
        stats.events = sink.sent
        stats.delivered = sink.delivered
        stats.failed = sink.failed
        stats.steps = fleet.steps
        stats.sim_seconds = fleet.time
        stats.healthy = int(labelled[0])
        stats.labelled = {mode: int(labelled[i + 1]) for i, mode in enumerate(FAILURE_MODES)}
        stats.failures_started = dict(fleet.failures_started)
        logger.info(
            "simulated %d events from %d cars (%.0f events/s), stopped by %s",
            stats.events,
            fleet.cars,
            stats.rate,
            stats.stopped_by,
        )
        return stats

    def _loop(
        self,
        fleet: Fleet,
        sink: BaseEventSink,
        steps: int | None,
        count: int | None,
        deadline: float | None,
        labelled: np.ndarray,
        started: float,
    ) -> str:
        speedup = self.fleet_settings.speedup
        send_from = self.fleet_settings.send_from
        paced_from = fleet.start if send_from is None else max(fleet.start, send_from)
        next_log = started + self.progress_every
        while True:
            if steps is not None and fleet.steps >= steps:
                return "duration"
            batch = fleet.step()
            if send_from is not None and int(batch.ts[0]) < send_from:
                continue  # fast-forward: same fleet state, nothing sent
            size = len(batch)
            for first in range(0, size, self.chunk):
                last = min(size, first + self.chunk)
                if count is not None:
                    last = min(last, first + count - sink.sent)
                if speedup > 0:
                    due = started + (int(batch.ts[first]) - paced_from) / 1000.0 / speedup
                    wait = due - time.monotonic()
                    if deadline is not None:
                        wait = min(wait, deadline - time.monotonic())
                    if wait > 0 and self._stopper.wait(wait):
                        return "signal"
                if self._stopper.done:
                    return "signal"
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return "timeout"
                sink.send(batch, first, last)
                # Bin 0 counts healthy rows (code -1), bin i + 1 failure mode i.
                labelled += np.bincount(batch.failure[first:last] + 1, minlength=len(labelled))
                if count is not None and sink.sent >= count:
                    return "count"
                if now >= next_log:
                    next_log = now + self.progress_every
                    active = int((batch.failure >= 0).sum())
                    logger.info(
                        "%d events sent, %.0f/s, simulated %.0f s, %d cars failing",
                        sink.sent,
                        sink.sent / max(now - started, 1e-9),
                        fleet.time,
                        active,
                    )


def run_simulation(
    settings: Settings | None = None,
    fleet: FleetSettings | None = None,
    *,
    sink: BaseEventSink | None = None,
    count: int | None = None,
    timeout: float | None = None,
    **options: Any,
) -> SimulationStats:
    """Run one simulation; ``options`` are `FleetSettings` fields when ``fleet`` is not given.

    Example:
        >>> from lakeless.fleet import MemorySink
        >>> stats = run_simulation(sink=MemorySink(), cars=10, seed=3, duration=5, speedup=0)
        >>> stats.events, stats.steps, stats.stopped_by
        (50, 5, 'duration')
    """
    config = fleet if fleet is not None else FleetSettings(**options)
    return Simulator(config, settings, sink).run(count=count, timeout=timeout)


def simulate_to_kafka(
    settings: Settings,
    cars: int = 100,
    duration: float = 60.0,
    seed: int = 0,
    *,
    topic: str | None = None,
    count: int | None = None,
    timeout: float | None = None,
    **options: Any,
) -> SimulationStats:
    """Produce a fleet's events to Kafka as fast as possible (tests and benchmarks).

    Args:
        settings: Kafka connection and topic names.
        cars: number of cars.
        duration: simulated seconds (``cars * duration / interval`` events).
        seed: random seed.
        topic: destination topic (default ``settings.topics.raw``).
        count: stop after this many events.
        timeout: stop after this many wall seconds.
        **options: further `FleetSettings` fields (``interval``, ``failure_rate``, ``start`` ...).
    """
    config = FleetSettings(
        cars=cars, duration=duration, seed=seed, speedup=0.0, to="kafka", **options
    )
    sink = KafkaSink(settings.kafka, topic or settings.topics.raw)
    return Simulator(config, settings, sink).run(count=count, timeout=timeout)


def fleet_events(
    cars: int = 100,
    seed: int = 0,
    *,
    count: int | None = None,
    duration: float | None = None,
    **options: Any,
) -> Iterator[SensorEvent]:
    """Yield a fleet's events in order, without any I/O or pacing.

    Args:
        cars: number of cars.
        seed: random seed.
        count: stop after this many events.
        duration: stop after this many simulated seconds.
        **options: `Fleet` arguments (``interval``, ``start``, ``failure_rate``, ``models`` ...).

    Example:
        >>> events = list(fleet_events(cars=2, seed=1, duration=3, start=0))
        >>> [(e.car_id, e.seq) for e in events][:3]
        [('car-00000', 0), ('car-00001', 0), ('car-00000', 1)]
    """
    fleet = Fleet(cars, seed=seed, **options)
    steps = None if duration is None else math.ceil(duration / fleet.interval)
    left = count
    for batch in fleet.batches(steps):
        stop = len(batch) if left is None else min(left, len(batch))
        yield from batch.events(0, stop)
        if left is not None:
            left -= stop
            if left <= 0:
                return
