"""The main job, ``lakeless demo``: the whole pipeline on one machine, end to end.

1. Start Kafka and Mosquitto (`lakeless.stack`) and create the topics.
2. Write a history: ``warmup`` simulated minutes of a fleet with failures, ending now, straight to
   ``sensor-raw`` (as if the bridge had forwarded it). The live fleet later is the same fleet
   going on (same seed, fast-forwarded to where the history ended).
3. Start the stages as supervised processes (a crashed stage is restarted and reported):
   ``preprocess``, ``twin`` (with its HTTP API), ``bridge``, the ``dashboard`` when installed.
4. Once the history is preprocessed, train the first model from Kafka (the last ``warmup``
   minutes of ``sensor-clean``) and promote it; then start ``score`` and the fleet sending
   over MQTT in real time.
5. Every few seconds print events/s per stage, anomalies and detection quality so far against
   the simulator's labels (for the live events only: the history was the training data); at
   the end (``duration`` or Ctrl-C) stop every stage, and the stack when the demo started it,
   and print a final report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from lakeless.config import Settings
from lakeless.demo._supervisor import StageProcess, Supervisor
from lakeless.demo._watch import DetectionTracker, TopicRates
from lakeless.errors import LakelessError
from lakeless.kafka import create_topics, make_consumer, pipeline_topics
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.model.evaluate import Evaluation
from lakeless.stack import Stack

__all__ = ["DemoOptions", "DemoReport", "run_demo"]

logger = logging.getLogger(__name__)

MODEL_NAME = "car-autoencoder"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo simulates and for how long (``duration`` ``None``: until Ctrl-C)."""

    cars: int = 100
    warmup_minutes: float = 20.0
    failure_rate: float = 12.0
    epochs: int = 10
    duration: float | None = None
    seed: int = 7
    dashboard_port: int = 8080
    twin_port: int = 8081
    summary_every: float = 5.0
    #: Leave Kafka and Mosquitto running at the end (they are stopped when the demo started them).
    keep_stack: bool = False


@dataclass
class DemoReport:
    """What the demo did, for the final report."""

    history_events: int = 0
    trained: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    model_versions: list[int] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str | None = None


class DemoError(LakelessError):
    """A demo step failed (its log says why)."""


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = make_consumer(settings.kafka, group_id="lakeless-demo-offsets")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def run_demo(
    stack: Stack,
    settings: Settings,
    options: DemoOptions,
    show: Callable[[str, DemoReport, dict[str, float], str], None],
) -> DemoReport:
    """Run the demo until ``options.duration`` or SIGINT/SIGTERM; returns the final report.

    Args:
        stack: the embedded Kafka and Mosquitto to start (already running ones are reused).
        settings: topic names; Kafka and MQTT addresses are taken from ``stack``.
        options: fleet size, warm-up, duration.
        show: called with a phase name, the report so far, per-topic events/s and the
            dashboard URL, to print progress.
    """
    started = time.monotonic()
    report = DemoReport()
    stopper = Stopper(RunLimits(timeout=options.duration))
    started_stack = stack.kafka.pid() is None and stack.mqtt.pid() is None
    stack.up()
    create_topics(stack.kafka_settings, pipeline_topics(settings.topics))
    env = {
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap,
        "LAKELESS_MQTT__URL": stack.mqtt.url,
        "LAKELESS_DATA_DIR": str(stack.settings.data_dir),
        "LAKELESS_LOG_LEVEL": "INFO",
    }
    supervisor = Supervisor(stack.settings.data_dir / "demo-logs", env)
    rates = TopicRates(
        settings, [settings.topics.raw, settings.topics.clean, settings.topics.anomalies]
    )
    tracker: DetectionTracker | None = None
    url = f"http://127.0.0.1:{options.dashboard_port}/"
    try:
        with stop_on_signals(stopper):
            history_start_ms = int((time.time() - options.warmup_minutes * 60) * 1000)
            report.history_events = _write_history(supervisor, options, history_start_ms)
            _start_stages(supervisor, options)
            _wait_preprocessed(settings, rates, report.history_events, stopper, show, report, url)
            if stopper.done:
                return report
            report.trained = _train(supervisor, options, stopper)
            tracker = DetectionTracker(settings, _end_offsets(settings, settings.topics.clean))
            supervisor.start(
                StageProcess("score", ["score", "--model", MODEL_NAME, "--until-idle", "3600"])
            )
            # The same fleet goes on: same seed and start, simulated up to where the history
            # ended, then sent live over MQTT in real time.
            live_from = history_start_ms + int(options.warmup_minutes * 60_000)
            supervisor.start(
                StageProcess(
                    "fleet",
                    [
                        "simulate", "--to", "mqtt", "--cars", str(options.cars),
                        "--failure-rate", str(options.failure_rate), "--seed",
                        str(options.seed), "--start", str(history_start_ms),
                        "--send-from", str(live_from),
                    ],
                )
            )  # fmt: skip
            while not stopper.wait(options.summary_every):
                report.events += supervisor.check()
                tracker.poll()
                report.evaluation = tracker.evaluation()
                report.model_versions = sorted(tracker.versions)
                report.totals, per_s = rates.rates()
                show("live", report, per_s, url)
    finally:
        report.stopped_by = stopper.reason
        supervisor.stop()
        if tracker is not None:
            tracker.poll()
            report.evaluation = tracker.evaluation(settle_ms=0)
            report.model_versions = sorted(tracker.versions)
            tracker.close()
        with contextlib.suppress(Exception):
            report.totals = rates.totals()
        rates.close()
        report.restarts = {s.name: s.restarts for s in supervisor.stages.values() if s.restarts}
        if started_stack and not options.keep_stack:
            stack.down()
        report.seconds = time.monotonic() - started
    return report


def _write_history(supervisor: Supervisor, options: DemoOptions, start_ms: int) -> int:
    seconds = options.warmup_minutes * 60
    out = _run_job(
        supervisor,
        "history",
        [
            "simulate", "--to", "kafka", "--fast", "--json", "--cars", str(options.cars),
            "--duration", str(seconds), "--start", str(start_ms), "--failure-rate",
            str(options.failure_rate), "--seed", str(options.seed),
        ],
    )  # fmt: skip
    return int(out["events"])


def _start_stages(supervisor: Supervisor, options: DemoOptions) -> None:
    supervisor.start(StageProcess("preprocess", ["preprocess"]))
    supervisor.start(StageProcess("twin", ["twin", "--serve-port", str(options.twin_port)]))
    supervisor.start(StageProcess("bridge", ["bridge"]))
    try:
        import lakeless.dashboard  # noqa: F401
    except ImportError:
        return
    # The dashboard reads the twin's database (LAKELESS_DATA_DIR) and follows MODEL_NAME.
    supervisor.start(
        StageProcess(
            "dashboard",
            ["dashboard", "--port", str(options.dashboard_port), "--model", MODEL_NAME],
        )
    )


def _wait_preprocessed(
    settings: Settings,
    rates: TopicRates,
    expected: int,
    stopper: Stopper,
    show: Callable[[str, DemoReport, dict[str, float], str], None],
    report: DemoReport,
    url: str,
) -> None:
    topics = settings.topics
    while not stopper.wait(2.0):
        report.totals, per_s = rates.rates()
        show("preprocessing the history", report, per_s, url)
        if report.totals[topics.clean] + _total(settings, topics.dlq) >= expected:
            return


def _total(settings: Settings, topic: str) -> int:
    return sum(_end_offsets(settings, topic).values())


def _train(supervisor: Supervisor, options: DemoOptions, stopper: Stopper) -> dict[str, Any]:
    minutes = f"{options.warmup_minutes + 1:g}m"
    args = ["train", "--last", minutes, "--name", MODEL_NAME, "--epochs", str(options.epochs)]
    return _run_job(supervisor, "train", [*args, "--promote", "--json"], stopper)


def _run_job(
    supervisor: Supervisor, name: str, args: list[str], stopper: Stopper | None = None
) -> dict[str, Any]:
    """Run a one-shot ``lakeless`` command; its JSON output is the result."""
    log = supervisor.log_dir / f"{name}.log"
    out_file = supervisor.log_dir / f"{name}.json"
    with log.open("ab") as err, out_file.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lakeless", *args], stdout=out, stderr=err, env=supervisor.env
        )
        while process.poll() is None:
            if stopper is not None and stopper.done:
                process.terminate()
            time.sleep(0.2)
    if process.returncode != 0:
        raise DemoError(f"`lakeless {args[0]}` failed (exit {process.returncode}); see {log}")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result
