"""The pipeline benchmark: devices -> MQTT -> bridge -> preprocess -> score -> twin on one box.

Every stage runs as its own ``lakeless`` process, as in production (and in the demo): ``bridges``
bridge processes (a shared subscription when more than one), preprocess, score (``--all-scores``,
so every event gives a latency sample) and the twin (SQLite), against one Kafka broker and one
Mosquitto (throwaway ones unless given). Each process has a ``--timeout`` and is stopped with
SIGTERM at the end. The devices are ``publishers`` ``lakeless simulate --to mqtt`` processes,
each with its own cars (``--id-prefix``), one event per car every ``interval`` seconds at wall
speed, so ``rate * interval`` cars offer ``rate`` events/s (the talk's 100,000 cars at one
event per 10 s are 10,000 events/s).

``pipeline-step-<rate>`` (one per step of the ladder)
    The publishers offer ``rate`` for ``warmup + step_seconds``; over the last ``step_seconds``
    every stage's rate (the growth of what its consumer group committed; for the bridge, of the
    raw topic) and its lag at the end (input end offsets minus committed; for the MQTT leg,
    the events the schedule has sent minus those in the raw topic) are recorded. Then the
    pipeline drains and the counts must balance (PUBACKed = raw = clean + dead-lettered =
    scored). A step is *sustained* when every stage's lag ended under ``lag_bound_s`` seconds
    of traffic and never exceeded twice that (its rate is reported; committed offsets move a
    batch at a time, so a short window's rate alone is too coarse to judge), nothing was
    lost, and the publishers kept their schedule (else the *load generator* is the limit,
    and the step says so). The first stage that fails names the bottleneck. The ladder
    stops at the first step that is not sustained.
``pipeline-sustained``
    The highest sustained step, run ``repeats`` times in all: the median end-to-end rate (what
    the twin committed per second), every run's rate and the spread.
``stage-<name>``
    Each stage's rate and lag in the median run of the sustained rate.
``pipeline-latency``
    ``latency_rate`` offered for ``latency_seconds`` (after the warm-up), ``repeats`` times:
    p50/p99 from the device's send (the event time in the payload: a paced chunk leaves when
    its last event is due, so a reading is never sent before its time, at most one chunk late)
    to the score record's LogAppendTime, the broker's clock when the record was appended to
    the output topic, which is when any consumer can have it; the anomaly records likewise
    (``anomaly_p50_ms``/``anomaly_p99_ms``). Reading the outputs after the run, rather than
    timestamping on arrival, keeps a reader from competing for the two cores while latency is
    measured and leaves the reader's own fetch wait out. ``saturated`` says when the step was
    not sustained (the figure is then a backlog, not a latency).

Peers measured in the same run (`lakeless.bench._pipepeers`): ``kafka-producer-perf`` (the
ceiling), ``mqtt-publish``, ``bridge-drain-paho`` and ``bridge-drain-fast``. Every result
carries the 1-minute load average at its measurement.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._harness import kafka_facts
from lakeless.bench._pipepeers import MqttLegPeers, producer_perf, spread
from lakeless.bench._pipestep import StepRunner, StepSettings
from lakeless.bench._result import BenchReport, BenchResult, machine_info
from lakeless.config import KafkaSettings, MqttSettings

__all__ = ["CEILING", "PipelineBenchSettings", "run_pipeline_bench"]

logger = logging.getLogger(__name__)

#: Name of the ceiling result.
CEILING: Final = "kafka-producer-perf"


class PipelineBenchSettings(BaseModel):
    """What ``bench pipeline`` measures and how long (see the module docstring).

    Attributes:
        rates: the ladder of offered events/s, lowest first.
        step_seconds: measured seconds of each step (after ``warmup``).
        warmup: seconds of each step before the measurement starts.
        latency_rate: offered events/s while latency is measured.
        latency_seconds: measured seconds of each latency run.
        repeats: runs of the sustained rate and of the latency (median and spread).
        publishers: simulator processes offering the load.
        bridges: bridge processes (more than one: an MQTT shared subscription).
        interval: seconds between two events of one car.
        failure_rate: failures per car per simulated hour (anomalies to measure).
        partitions: partitions of every topic.
        min_ratio: a stage sustains a rate when it runs at least this fraction of it.
        lag_bound_s: most lag (seconds of traffic at the offered rate) a sustained stage has.
        peer_events: messages per run of the MQTT-leg peers.
        perf_events: records of the producer-perf ceiling.
        model: the scorer's model: ``zscore`` (trains in milliseconds) or ``autoencoder``
            (the default model; needs TensorFlow).
        quick: only recorded in the report.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rates: tuple[int, ...] = (5_000, 10_000, 15_000, 20_000, 25_000, 30_000)
    step_seconds: float = Field(default=60.0, gt=0)
    warmup: float = Field(default=10.0, ge=0)
    latency_rate: int = Field(default=10_000, ge=1)
    latency_seconds: float = Field(default=30.0, gt=0)
    repeats: int = Field(default=3, ge=1)
    publishers: int = Field(default=2, ge=1, le=16)
    bridges: int = Field(default=1, ge=1, le=16)
    interval: float = Field(default=10.0, gt=0)
    failure_rate: float = Field(default=2.0, ge=0)
    partitions: int = Field(default=6, ge=1)
    min_ratio: float = Field(default=0.97, gt=0, le=1)
    lag_bound_s: float = Field(default=2.0, gt=0)
    peer_events: int = Field(default=30_000, ge=100)
    perf_events: int = Field(default=300_000, ge=1000)
    model: str = Field(default="autoencoder", pattern="^(zscore|autoencoder)$")
    quick: bool = False

    @classmethod
    def for_mode(cls, quick: bool, **fields: Any) -> PipelineBenchSettings:
        """Settings for ``--quick`` (two short steps, one run each) or a full run."""
        if quick:
            defaults: dict[str, Any] = {
                "rates": (1_000, 2_000),
                "step_seconds": 8.0,
                "warmup": 4.0,
                "latency_rate": 2_000,
                "latency_seconds": 8.0,
                "repeats": 1,
                "peer_events": 5_000,
                "perf_events": 50_000,
                "model": "zscore",
                "quick": True,
            }
            return cls(**{**defaults, **{k: v for k, v in fields.items() if v is not None}})
        return cls(**{k: v for k, v in fields.items() if v is not None})

    def step(self, rate: int, seconds: float) -> StepSettings:
        """The settings of one step at ``rate``."""
        return StepSettings(
            rate=rate,
            seconds=seconds,
            warmup=self.warmup,
            publishers=self.publishers,
            interval=self.interval,
            failure_rate=self.failure_rate,
            min_ratio=self.min_ratio,
            lag_bound_s=self.lag_bound_s,
        )


def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    order = sorted(range(len(runs)), key=lambda i: runs[i][key] or 0.0)
    return runs[order[len(order) // 2]]


def _ladder(bench: PipelineBenchSettings, runner: StepRunner) -> list[BenchResult]:
    results: list[BenchResult] = []
    best: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    for rate in bench.rates:
        step = runner.run_step(bench.step(rate, bench.step_seconds))
        results.append(runner.step_result(f"pipeline-step-{rate}", step))
        last = step
        if not step["sustained"]:
            break
        best = step
    runs: list[dict[str, Any]] = []
    if best is not None:
        runs = [best]
        for _ in range(bench.repeats - 1):
            runs.append(runner.run_step(bench.step(best["rate"], bench.step_seconds)))
    chosen = _median_run(runs, "end_to_end_per_s") if runs else last
    assert chosen is not None
    rates = [r["end_to_end_per_s"] for r in runs]
    sustained = BenchResult(
        "pipeline-sustained",
        chosen["window_events"] if runs else 0,
        chosen["seconds"],
        {
            "offered_per_s": best["rate"] if best else None,
            "runs_per_s": [round(r, 1) for r in rates],
            "runs_sustained": [r["sustained"] for r in runs],
            "spread": spread(rates),
            "next_step": None if last is best else last and last["rate"],
            "next_step_bottleneck": None if last is best else last and last["bottleneck"],
            "load_avg_1m": [r["load_avg_1m"] for r in runs] or [chosen["load_avg_1m"]],
            "cpu": chosen["cpu"],
            "goal": ">= 20,000 events/s sustained end to end",
            "note": "highest step every stage sustained"
            if runs
            else f"no step sustained; bottleneck {chosen['bottleneck']}",
        },
    )
    results.append(sustained)
    for name, stage in chosen["stages"].items():
        results.append(
            BenchResult(
                f"stage-{name}",
                int(stage["rate"] * chosen["seconds"]),
                chosen["seconds"],
                {
                    "offered_per_s": chosen["rate"],
                    "lag_end": stage["lag"],
                    "lag_max": stage["lag_max"],
                    "ok": stage["ok"],
                    "load_avg_1m": chosen["load_avg_1m"],
                },
            )
        )
    return results


def _latency(bench: PipelineBenchSettings, runner: StepRunner) -> BenchResult:
    runs = []
    for _ in range(bench.repeats):
        step = runner.run_step(bench.step(bench.latency_rate, bench.latency_seconds), latency=True)
        runs.append(step)
    chosen = _median_run(runs, "p99_ms")
    p99s = [r["p99_ms"] for r in runs if r["p99_ms"] is not None]
    return BenchResult(
        "pipeline-latency",
        chosen["latency"]["samples"],
        chosen["seconds"],
        {
            "offered_per_s": bench.latency_rate,
            "p50_ms": chosen["latency"]["p50_ms"],
            "p99_ms": chosen["latency"]["p99_ms"],
            "max_ms": chosen["latency"]["max_ms"],
            "anomaly_p50_ms": chosen["anomaly_latency"]["p50_ms"],
            "anomaly_p99_ms": chosen["anomaly_latency"]["p99_ms"],
            "anomaly_samples": chosen["anomaly_latency"]["samples"],
            "runs_p50_ms": [r["latency"]["p50_ms"] for r in runs],
            "runs_p99_ms": [r["p99_ms"] for r in runs],
            "spread": spread(p99s),
            "saturated": [not r["sustained"] for r in runs],
            "bottleneck": chosen["bottleneck"],
            "generator_late_mean_ms": chosen["generator"]["late_mean_ms"],
            "load_avg_1m": [r["load_avg_1m"] for r in runs],
            "goal": "p99 < 100 ms at 10,000 events/s",
            "note": "device send (event time) -> score record LogAppendTime",
        },
    )


@contextlib.contextmanager
def _brokers(workdir: Path, kafka: KafkaSettings | None, mqtt: MqttSettings | None) -> Any:
    from lakeless.stack import KafkaBroker, MosquittoBroker, free_port

    started: list[Any] = []
    try:
        if kafka is None:
            broker = KafkaBroker(workdir, free_port(), free_port(), tiered_storage=False, heap="1g")
            broker.start()
            started.append(broker)
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
        if mqtt is None:
            mosquitto = MosquittoBroker(workdir, free_port())
            mosquitto.start()
            started.append(mosquitto)
            mqtt = MqttSettings(url=mosquitto.url)
        pids = {
            "kafka" if isinstance(server, KafkaBroker) else "mosquitto": server.pid()
            for server in started
        }
        servers = {name: pid for name, pid in pids.items() if pid is not None}
        yield kafka, mqtt, servers, not started or not isinstance(started[0], KafkaBroker)
    finally:
        for server in reversed(started):
            server.stop()


def run_pipeline_bench(
    bench: PipelineBenchSettings | None = None,
    kafka: KafkaSettings | None = None,
    mqtt: MqttSettings | None = None,
    *,
    peers: bool = True,
) -> BenchReport:
    """Run the pipeline suite; see the module docstring.

    Args:
        bench: what to measure (default: a full run).
        kafka: an existing cluster; ``None`` starts a throwaway broker for the run.
        mqtt: an existing MQTT broker; ``None`` starts a throwaway Mosquitto.
        peers: also measure the peers (the MQTT leg alone, producer-perf).

    Raises:
        lakeless.bench.BenchError: a stage died, or the counts did not balance in time.
        lakeless.errors.StackError: a throwaway broker did not start.
    """
    bench = bench or PipelineBenchSettings()
    started = time.monotonic()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="lakeless-bench-pipe-") as tmp:
        workdir = Path(tmp)
        with _brokers(workdir, kafka, mqtt) as (kafka_settings, mqtt_settings, servers, shared):
            prefix = f"lakeless-bench-pipe-{uuid.uuid4().hex[:8]}"
            runner = StepRunner(
                kafka_settings,
                mqtt_settings,
                workdir,
                prefix,
                bench.partitions,
                bench.bridges,
                servers,
            )
            leg = MqttLegPeers(kafka_settings, mqtt_settings, prefix, bench.partitions)
            results: list[BenchResult] = []
            extra_topics: list[str] = []
            try:
                if peers:
                    perf, topics = producer_perf(
                        kafka_settings, mqtt_settings, workdir, bench.perf_events, 300.0
                    )
                    results.append(perf)
                    extra_topics += topics
                    results += leg.run(bench.peer_events, bench.repeats, 300.0)
                runner.setup(bench.model, budget=_budget(bench))
                results += _ladder(bench, runner)
                results.append(_latency(bench, runner))
                totals = runner.finish()
                results.append(
                    BenchResult(
                        "pipeline-counts",
                        totals["scored"],
                        totals["seconds"],
                        {**totals, "note": "every event through every stage, whole run"},
                    )
                )
            finally:
                runner.stop()
                leg.cleanup()
                if shared:
                    runner.delete_topics(extra_topics + leg.topics)
    _annotate(results)
    machine |= {
        **kafka_facts(kafka_settings, throwaway=kafka is None),
        "python": sys.version.split()[0],
        "pid": os.getpid(),
    }
    return BenchReport.finished(
        "pipeline",
        results,
        started=started,
        machine=machine,
        ceiling=CEILING if peers else None,
        quick=bench.quick,
    )


def _budget(bench: PipelineBenchSettings) -> float:
    """Seconds every stage process may live at most (its ``--timeout``)."""
    per_step = bench.warmup + max(bench.step_seconds, bench.latency_seconds) + 180
    steps = len(bench.rates) + 2 * bench.repeats
    return math.ceil(per_step * steps + 600)


def _annotate(results: list[BenchResult]) -> None:
    """Ratios the report's single ceiling does not give: to the MQTT leg measured alone."""
    by_name = {r.name: r for r in results}
    leg = by_name.get("bridge-drain-fast")
    publish = by_name.get("mqtt-publish")
    for result in results:
        if result.name.startswith(("pipeline-step", "pipeline-sustained")):
            if leg is not None and leg.events_per_s:
                result.extra["ratio_to_bridge_drain_fast"] = round(
                    result.events_per_s / leg.events_per_s, 3
                )
            if publish is not None and publish.events_per_s:
                result.extra["ratio_to_mqtt_publish"] = round(
                    result.events_per_s / publish.events_per_s, 3
                )
