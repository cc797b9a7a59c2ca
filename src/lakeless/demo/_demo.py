"""The demo's steps (see `lakeless.demo`)."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from lakeless._process import spawn, stop_groups
from lakeless.config import Settings
from lakeless.demo._settings import DemoSettings
from lakeless.demo._supervisor import StageProcess, Supervisor
from lakeless.demo._watch import DetectionTracker, TopicRates
from lakeless.errors import LakelessError
from lakeless.kafka import create_topics, end_offsets
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.model.evaluate import Evaluation
from lakeless.pipeline import DEFAULT_PIPELINE, Pipeline, SchemaRegistry, pipeline_topic_specs
from lakeless.stack import Stack

__all__ = ["DemoError", "DemoReport", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass
class DemoReport:
    """What the demo did, for the final report."""

    pipeline: str = DEFAULT_PIPELINE
    history_events: int = 0
    trained: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    model_versions: list[int] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json-report``)."""
        evaluation = self.evaluation
        return {
            "pipeline": self.pipeline,
            "history_events": self.history_events,
            "trained": self.trained,
            "totals": self.totals,
            "evaluation": evaluation.to_dict() if evaluation is not None else None,
            "model_versions": self.model_versions,
            "restarts": self.restarts,
            "seconds": round(self.seconds, 1),
            "stopped_by": self.stopped_by,
        }


class DemoError(LakelessError):
    """A demo step failed (its log says why)."""


def _pipeline(settings: Settings) -> Pipeline:
    """The demo's pipeline, registered (and its topics created) when it is not the default."""
    from lakeless.examples import EXAMPLES, example_schema

    name = settings.pipeline
    if name == DEFAULT_PIPELINE:
        pipeline = Pipeline.builtin(settings)
    else:
        registry = SchemaRegistry(settings)
        pipeline = registry.get(name)  # type: ignore[assignment]
        if pipeline is None:
            if name not in EXAMPLES:
                raise DemoError(
                    f"pipeline {name!r} is not registered and is not an example "
                    f"({', '.join(EXAMPLES)})"
                )
            pipeline, _ = registry.create(Pipeline.new(name, example_schema(name)))
    create_topics(settings.kafka, pipeline_topic_specs(settings, pipeline))
    return pipeline


def run_demo(
    stack: Stack,
    settings: Settings,
    show: Callable[[str, DemoReport, dict[str, float], str], None],
) -> DemoReport:
    """Run the demo until ``settings.demo.duration`` or SIGINT/SIGTERM; return the report.

    Args:
        stack: the embedded Kafka and Mosquitto to start (already running ones are reused).
        settings: the pipeline, topic names and ``settings.demo``; Kafka and MQTT addresses
            are taken from ``stack``.
        show: called with a phase name, the report so far, per-topic events/s and the
            dashboard URL, to print progress.
    """
    options: DemoSettings = settings.demo
    started = time.monotonic()
    stopper = Stopper(RunLimits(timeout=options.duration))
    started_stack = stack.kafka.pid() is None and stack.mqtt.pid() is None
    stack.up()
    settings = settings.model_copy(
        update={
            "kafka": stack.kafka_settings,
            "mqtt": settings.mqtt.model_copy(update={"url": stack.mqtt.url}),
        }
    )
    try:
        create_topics(settings.kafka, pipeline_topic_specs(settings, Pipeline.builtin(settings)))
        pipeline = _pipeline(settings)
        stack.grant(pipeline)  # a secured stack's stage principals on the pipeline's topics
    except BaseException:
        if started_stack and not options.keep_stack:
            stack.down()  # a demo that fails to start leaves nothing running
        raise
    topics = pipeline.topics
    report = DemoReport(pipeline=pipeline.name)
    env = {
        "LAKELESS_DATA_DIR": str(stack.settings.data_dir),
        "LAKELESS_LOG_LEVEL": "INFO",
        "LAKELESS_PIPELINE": pipeline.name,
        **_http_env(stack),
    }
    supervisor = Supervisor(stack.settings.data_dir / "demo-logs", env, _connect(stack))
    rates = TopicRates(settings, [topics.raw, topics.clean, topics.anomalies])
    tracker: DetectionTracker | None = None
    url = f"http://127.0.0.1:{options.dashboard_port}/" + _token_query(stack)
    try:
        with stop_on_signals(stopper):
            history_start_ms = int((time.time() - options.warmup * 60) * 1000)
            report.history_events = _write_history(supervisor, options, history_start_ms)
            _start_stages(supervisor, options)
            _wait_preprocessed(
                settings, pipeline, rates, report.history_events, stopper, show, report, url
            )
            if stopper.done:
                return report
            report.trained = _train(supervisor, options, stopper)
            clean_ends = end_offsets(settings.kafka, topics.clean)
            tracker = DetectionTracker(settings, pipeline, clean_ends)
            supervisor.start(StageProcess("score", ["score", "--until-idle", "3600"]))
            # The same devices go on: same seed and start, simulated up to where the history
            # ended, then sent live over MQTT in real time.
            live_from = history_start_ms + int(options.warmup * 60_000)
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


#: The stack principal each demo process connects as (a secured stack's ACLs are per stage).
_PRINCIPALS: Final = {"history": "simulate", "fleet": "simulate"}


def _connect(stack: Stack) -> Callable[[str], dict[str, str]]:
    """The environment that connects demo process ``name`` to ``stack`` (as its principal).

    Secured, each process reads its principal's ``client-<stage>.env`` (0600, written by the
    stack), so no password is on a command line or in the demo's own environment.
    """

    def env(name: str) -> dict[str, str]:
        principal = _PRINCIPALS.get(name, name)
        if stack.security is not None:
            return {"LAKELESS_ENV_FILE": str(stack.security.env_file(principal))}
        return stack.client_env(principal)

    return env


def _http_env(stack: Stack) -> dict[str, str]:
    """A secured demo's HTTP endpoints require the bearer token in ``<data-dir>/http-token``."""
    if stack.security is None:
        return {}
    path = stack.settings.data_dir / "http-token"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return {"LAKELESS_HTTP__TOKEN_FILE": str(path), "LAKELESS_HTTP__REQUIRE_TOKEN": "true"}


def _token_query(stack: Stack) -> str:
    """``?token=...`` for the dashboard's URL on a secured stack (a browser sends no header)."""
    if stack.security is None:
        return ""
    return "?token=" + (stack.settings.data_dir / "http-token").read_text().strip()


def _write_history(supervisor: Supervisor, options: DemoSettings, start_ms: int) -> int:
    seconds = options.warmup * 60
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


def _start_stages(supervisor: Supervisor, options: DemoSettings) -> None:
    supervisor.start(StageProcess("preprocess", ["preprocess"]))
    supervisor.start(StageProcess("twin", ["twin", "--serve-port", str(options.twin_port)]))
    supervisor.start(StageProcess("bridge", ["bridge"]))
    try:
        import lakeless.dashboard  # noqa: F401
    except ImportError:
        return
    # The dashboard reads the twin's database (LAKELESS_DATA_DIR) and the pipeline's model.
    supervisor.start(
        StageProcess("dashboard", ["dashboard", "--port", str(options.dashboard_port)])
    )


def _wait_preprocessed(
    settings: Settings,
    pipeline: Pipeline,
    rates: TopicRates,
    expected: int,
    stopper: Stopper,
    show: Callable[[str, DemoReport, dict[str, float], str], None],
    report: DemoReport,
    url: str,
) -> None:
    topics = pipeline.topics
    while not stopper.wait(2.0):
        report.totals, per_s = rates.rates()
        show("preprocessing the history", report, per_s, url)
        if report.totals[topics.clean] + _total(settings, topics.dlq) >= expected:
            return


def _total(settings: Settings, topic: str) -> int:
    return sum(end_offsets(settings.kafka, topic).values())


def _train(supervisor: Supervisor, options: DemoSettings, stopper: Stopper) -> dict[str, Any]:
    minutes = f"{options.warmup + 1:g}m"
    args = ["train", "--last", minutes, "--epochs", str(options.epochs)]
    return _run_job(supervisor, "train", [*args, "--promote", "--json"], stopper)


def _run_job(
    supervisor: Supervisor, name: str, args: list[str], stopper: Stopper | None = None
) -> dict[str, Any]:
    """Run a one-shot ``lakeless`` command; its JSON output is the result."""
    log = supervisor.log_dir / f"{name}.log"
    out_file = supervisor.log_dir / f"{name}.json"
    with log.open("ab") as err, out_file.open("wb") as out:
        process = spawn(
            [sys.executable, "-m", "lakeless", *args],
            env=supervisor.env_for(name),
            stdout=out,
            stderr=err,
        )
        while process.poll() is None:
            if stopper is not None and stopper.done:
                stop_groups([process], what=name)
            time.sleep(0.2)
    if process.returncode != 0:
        raise DemoError(f"`lakeless {args[0]}` failed (exit {process.returncode}); see {log}")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result
