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
from typing import Any, Final

import numpy as np

from lakeless.config import Settings, load_settings
from lakeless.fleet._fleet import Fleet
from lakeless.fleet._pumps import PumpFleet
from lakeless.fleet._schema import SensorEvent
from lakeless.fleet._settings import Destination, FleetSettings
from lakeless.fleet._sinks import (
    BaseEventSink,
    KafkaSink,
    MqttSink,
    NullSink,
    SimulationError,
    StreamSink,
)
from lakeless.kafka import StageMetrics, check_topics
from lakeless.lifecycle import Stopper, stop_on_signals
from lakeless.pipeline import DEFAULT_PIPELINE, Pipeline, resolve_pipeline

logger = logging.getLogger(__name__)


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
        late_max_ms: paced runs: the most a chunk was sent after its last event was due (the
            load generator fell behind its schedule by that much).
        late_mean_ms: paced runs: the mean of that over the chunks.
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
    late_max_ms: float = 0.0
    late_mean_ms: float = 0.0
    healthy: int = 0
    labelled: dict[str, int] = field(default_factory=dict)
    failures_started: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events per wall second."""
        return self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``rate``."""
        return {**asdict(self), "rate": round(self.rate, 1)}


#: The simulators by pipeline name (a registered pipeline of the same schema works too).
SIMULATORS: Final[dict[str, type[Fleet] | type[PumpFleet]]] = {
    "car-fleet": Fleet,
    "pumps": PumpFleet,
}


def simulator_for(settings: Settings) -> tuple[type[Fleet] | type[PumpFleet], Pipeline]:
    """The device simulator and the pipeline of ``settings.pipeline``.

    Raises:
        SimulationError: no simulator makes this pipeline's data.
    """
    from lakeless.examples import example_schema

    name = settings.pipeline
    if name == DEFAULT_PIPELINE:
        return Fleet, Pipeline.builtin(settings)
    if name in SIMULATORS and settings.simulate.to in ("stdout", "null"):
        return SIMULATORS[name], Pipeline.new(name, example_schema(name))  # no Kafka needed
    pipeline = resolve_pipeline(settings, name)
    for example, kind in SIMULATORS.items():
        if pipeline.schema.fingerprint == example_schema(example).fingerprint:
            return kind, pipeline
    raise SimulationError(
        f"no simulator makes the data of pipeline {name!r} (simulators: car fleet, pumps); "
        "send your devices' data over MQTT or replay it with `lakeless import`"
    )


def make_sink(
    to: Destination, settings: Settings, pipeline: Pipeline | None = None
) -> BaseEventSink:
    """The sink for a destination name."""
    pipeline = pipeline or Pipeline.builtin(settings)
    if to == "mqtt":
        return MqttSink(settings.mqtt, topic=settings.bridge.topic_template(pipeline.name))
    if to == "kafka":
        # Fails fast, naming the servers or the topic: a producer would wait for either.
        check_topics(settings.kafka, [pipeline.topics.raw], hint=pipeline.create_hint)
        return KafkaSink(settings.kafka, pipeline.topics.raw)
    if to == "stdout":
        return StreamSink(sys.stdout.buffer)
    return NullSink()


class Simulator:
    """Runs a fleet into a sink, paced, until a duration, count, timeout or signal.

    Args:
        fleet: what to simulate.
        settings: connection settings (default: `lakeless.config.load_settings`).
        sink: destination; default from ``fleet.to``.
        chunk: events handed to the sink at once (and the pacing granularity); default
            ``fleet.chunk``.
        flush_timeout: seconds to wait for outstanding acknowledgements at the end.
        progress_every: wall seconds between progress log lines (default: the settings'
            ``log_interval``).

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
        fleet: FleetSettings | None = None,
        settings: Settings | None = None,
        sink: BaseEventSink | None = None,
        *,
        chunk: int | None = None,
        flush_timeout: float = 30.0,
        progress_every: float | None = None,
    ) -> None:
        self.settings = settings
        self.fleet_settings = fleet or (settings.simulate if settings else FleetSettings())
        self.sink = sink
        self.chunk = max(1, chunk if chunk is not None else self.fleet_settings.chunk)
        self._late_sum = 0.0
        self._late_max = 0.0
        self._chunks = 0
        self.flush_timeout = flush_timeout
        self.progress_every = (
            self.fleet_settings.log_interval if progress_every is None else progress_every
        ) or float("inf")
        self.metrics = StageMetrics("simulate")
        self._stopper = Stopper()

    def stop(self) -> None:
        """Ask the running (or else the next) `run` to stop after its current chunk.

        Thread- and signal-safe.
        """
        self._stopper.request_stop("stop()")

    def run(self, count: int | None = None, timeout: float | None = None) -> SimulationStats:
        """Simulate until the duration is covered, ``count`` events or ``timeout`` wall seconds.

        SIGTERM and SIGINT stop the run cleanly when it runs in the main thread; outstanding
        messages are flushed in every case.
        """
        config = self.fleet_settings
        if count is None:
            count = config.count
        if timeout is None:
            timeout = config.timeout
        settings = self.settings or load_settings()
        kind, pipeline = (Fleet, None) if self.sink is not None else simulator_for(settings)
        fleet = config.fleet(kind)
        sink = self.sink or make_sink(config.to, settings, pipeline)
        stats = SimulationStats(seed=fleet.seed, first_ts=fleet.start)
        self._late_sum = self._late_max = 0.0
        self._chunks = 0
        steps = None if config.duration is None else math.ceil(config.duration / config.interval)
        labelled = np.zeros(len(fleet.modes) + 1, dtype=np.int64)
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        sink.open()
        if config.metrics_port:
            self.metrics.serve(config.metrics_port, config.metrics_host, settings.http)
        try:
            with stop_on_signals(self._stopper):
                stats.stopped_by = self._loop(
                    fleet, sink, steps, count, deadline, labelled, started
                )
        finally:
            # A fresh stopper for the next run, made after this one: a `stop` that arrives
            # while this run starts up is never lost.
            self._stopper = Stopper()
            stats.pending = sink.flush(self.flush_timeout)
            sink.close()
            self.metrics.close()
            stats.wall_seconds = time.monotonic() - started
        stats.events = sink.sent
        stats.delivered = sink.delivered
        stats.failed = sink.failed
        stats.steps = fleet.steps
        stats.late_max_ms = round(self._late_max * 1000, 1)
        stats.late_mean_ms = round(self._late_sum * 1000 / max(1, self._chunks), 2)
        stats.sim_seconds = fleet.time
        stats.healthy = int(labelled[0])
        stats.labelled = {mode: int(labelled[i + 1]) for i, mode in enumerate(fleet.modes)}
        stats.failures_started = dict(fleet.failures_started)
        logger.info(
            "simulated %d events from %d devices (%.0f events/s), stopped by %s",
            stats.events,
            fleet.cars,
            stats.rate,
            stats.stopped_by,
        )
        return stats

    def _loop(
        self,
        fleet: Fleet | PumpFleet,
        sink: BaseEventSink,
        steps: int | None,
        count: int | None,
        deadline: float | None,
        labelled: np.ndarray,
        started: float,
    ) -> str:
        speedup = self.fleet_settings.speedup_factor
        send_from = self.fleet_settings.send_from
        paced_from = fleet.start if send_from is None else max(fleet.start, send_from)
        # Real time (speedup 1) from now or later is paced on the wall clock: a reading leaves
        # when the clock shows its event time, so its time is its send time (the default
        # start, rounded down to the second, is caught up at once). Otherwise simulated time
        # runs from the run's start.
        origin = started
        wall = time.time()
        if speedup == 1.0 and paced_from >= wall * 1000 - 1000:
            origin = time.monotonic() + (paced_from / 1000.0 - wall)
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
                    # When its last event is due: no reading leaves before its own time.
                    due = origin + (int(batch.ts[last - 1]) - paced_from) / 1000.0 / speedup
                    wait = due - time.monotonic()
                    self._chunks += 1
                    if wait < 0:
                        self._late_sum -= wait
                        self._late_max = max(self._late_max, -wait)
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
                self.metrics.events.inc(last - first)
                # Bin 0 counts healthy rows (code -1), bin i + 1 failure mode i.
                labelled += np.bincount(batch.failure[first:last] + 1, minlength=len(labelled))
                if count is not None and sink.sent >= count:
                    return "count"
                if now >= next_log:
                    next_log = now + self.progress_every
                    self.metrics.rate.set(sink.sent / max(now - started, 1e-9))
                    active = int((batch.failure >= 0).sum())
                    logger.info(
                        "%d events sent, %.0f/s, simulated %.0f s, %d devices failing",
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
