"""One step of ``bench pipeline``: stage processes up, publishers offering a rate, measured.

`StepRunner` owns the run's topics, its model, the stage processes (started once, kept across
steps, stopped with SIGTERM at the end) and the publishers of each step. See
`lakeless.bench._pipeline` for what a step measures.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pydantic import BaseModel, ConfigDict

from lakeless._process import spawn, stop_groups
from lakeless.bench._harness import BenchError, delete_bench_topics, mqtt_session
from lakeless.bench._pipewatch import OffsetWatch, percentiles, read_latencies
from lakeless.bench._result import BenchResult
from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.kafka import TopicSpec, create_topics, end_offsets

__all__ = ["StepRunner", "StepSettings", "cpu_per_event"]

logger = logging.getLogger(__name__)

_MODEL = "bench-pipeline-model"
_STAGES = ("bridge", "preprocess", "score", "twin")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_per_event(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, Any]:
    """CPU microseconds per delivered event of each process, and the rate they bound.

    Every event costs CPU in every process it passes (publishers, Mosquitto, bridge, broker,
    preprocess, score, twin); on ``cores`` cores no pipeline runs faster than
    ``cores / sum(cost per event)`` events/s, however the work is spread. Measured over the
    whole step (warm-up, measurement and drain, idle polling included).

    Example:
        >>> cpu = cpu_per_event({"a": 1.0, "b": 0.0}, {"a": 1.5, "b": 0.5}, 10_000)
        >>> cpu["us_per_event"], cpu["total_us_per_event"]
        ({'a': 50.0, 'b': 50.0}, 100.0)
    """
    per = {
        name: round((after[name] - before.get(name, 0.0)) / events * 1e6, 1)
        for name in sorted(after)
        if events > 0
    }
    total = round(sum(per.values()), 1)
    cores = len(os.sched_getaffinity(0))
    return {
        "us_per_event": per,
        "total_us_per_event": total,
        "cores": cores,
        "bound_per_s": round(cores * 1e6 / total) if total > 0 else None,
    }


class StepSettings(BaseModel):
    """One step: ``rate`` offered for ``warmup + seconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: int
    seconds: float
    warmup: float
    publishers: int
    interval: float
    failure_rate: float
    min_ratio: float
    lag_bound_s: float


class StepRunner:
    """Runs steps against one set of stage processes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        mqtt: MqttSettings,
        workdir: Path,
        prefix: str,
        partitions: int,
        bridges: int,
        servers: dict[str, int] | None = None,
    ) -> None:
        self.kafka = kafka
        self.servers = dict(servers or {})  # pids of the brokers this run started, by name
        self.mqtt = mqtt
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.partitions = partitions
        self.bridges = bridges
        self.topics = TopicSettings(
            raw=f"{prefix}-raw",
            clean=f"{prefix}-clean",
            dlq=f"{prefix}-dlq",
            anomalies=f"{prefix}-anomalies",
            scores=f"{prefix}-scores",
            models=f"{prefix}-models",
            schemas=f"{prefix}-schemas",  # never created: the built-in car fleet
        )
        self.template = f"{prefix}/{{key}}/sensors"
        self.groups = {s: f"{prefix}-{s}" for s in ("preprocess", "score", "twin")}
        self.processes: dict[str, Any] = {}
        self.steps = 0
        self.published = 0
        self.started = time.monotonic()
        self.seed = 11
        self.watch: OffsetWatch | None = None

    # ---- set-up -----------------------------------------------------------------------------

    def setup(self, model: str, budget: float) -> None:
        """Topics, the model, the stage processes; returns once they all process events."""
        t = self.topics
        log_append = {"message.timestamp.type": "LogAppendTime"}
        create_topics(
            self.kafka,
            [
                *(TopicSpec(n, self.partitions, 1) for n in (t.raw, t.clean, t.dlq)),
                *(TopicSpec(n, self.partitions, 1, log_append) for n in (t.anomalies, t.scores)),
                TopicSpec(t.models, 1, 1, {"max.message.bytes": str(64 * 1024 * 1024)}),
            ],
        )
        self._register(model)
        self._start_stages(budget)
        self.watch = OffsetWatch(
            self.kafka,
            {n: self.partitions for n in (t.raw, t.clean, t.dlq, t.anomalies, t.scores)},
            {
                self.groups["preprocess"]: (t.raw,),
                self.groups["score"]: (t.clean,),
                self.groups["twin"]: (t.clean, t.anomalies),
            },
        ).start()
        # A first small step proves every stage is subscribed and processing.
        warm = StepSettings(
            rate=200,
            seconds=1,
            warmup=0,
            publishers=1,
            interval=1,
            failure_rate=0,
            min_ratio=0,
            lag_bound_s=1e9,
        )
        self.run_step(warm, warm_up=True)

    def _register(self, kind: str) -> None:
        from lakeless.fleet import Fleet
        from lakeless.fleet._schema import FEATURES
        from lakeless.model import Autoencoder, ZScoreModel
        from lakeless.registry import Registry

        fleet = Fleet(1000, seed=self.seed)
        x = np.concatenate([fleet.step().values for _ in range(50)]).astype(np.float32)
        model: Any = ZScoreModel() if kind == "zscore" else Autoencoder(epochs=3, seed=1)
        model.fit(x)
        with Registry(self._settings()) as registry:
            record = registry.register(
                _MODEL,
                model.to_onnx(),
                threshold=model.threshold,
                features=FEATURES,
                normalization=model.normalization,
                frameworks=model.framework_versions(),
            )
            registry.promote(_MODEL, record.version)

    def _settings(self) -> Settings:
        return Settings(kafka=self.kafka, mqtt=self.mqtt, topics=self.topics)

    def _env(self) -> dict[str, str]:
        t = self.topics
        env = {
            **os.environ,
            "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "LAKELESS_MQTT__URL": self.mqtt.url,
            "LAKELESS_DATA_DIR": str(self.workdir),
            "LAKELESS_LOG_LEVEL": "INFO",
            "LAKELESS_PIPELINE": "car-fleet",
            "LAKELESS_BRIDGE__MQTT_TOPIC": self.template,
        }
        for name in ("raw", "clean", "dlq", "anomalies", "scores", "models", "schemas"):
            env[f"LAKELESS_TOPICS__{name.upper()}"] = getattr(t, name)
        return env

    def _spawn(self, name: str, args: list[str]) -> Any:
        process = spawn(
            [sys.executable, "-m", "lakeless", *args],
            log=self.logs / f"{name}.log",
            env=self._env(),
        )
        self.processes[name] = process
        return process

    def _start_stages(self, budget: float) -> None:
        limit = ["--timeout", str(int(budget)), "--log-interval", "0"]
        stats = self.workdir / "stats"
        stats.mkdir(exist_ok=True)
        for i in range(self.bridges):
            share = ["--share-group", self.prefix] if self.bridges > 1 else []
            name = f"bridge-{i}"
            self._spawn(
                name,
                [
                    "bridge",
                    "--client-id",
                    f"{self.prefix}-{i}",
                    "--session-expiry-s",
                    "600",
                    "--timeout",
                    str(int(budget)),
                    "--stats-json",
                    str(stats / f"{name}.json"),
                    *share,
                ],
            )
        for stage in ("preprocess", "score", "twin"):
            args = [stage, "--group-id", self.groups[stage], *limit]
            if stage == "score":
                args += ["--all-scores", "--model", _MODEL]
            if stage == "twin":
                args += ["--url", f"sqlite:///{self.workdir / 'twin.sqlite'}"]
            self._spawn(stage, [*args, "--stats-json", str(stats / f"{stage}.json")])
        deadline = time.monotonic() + 180
        for i in range(self.bridges):
            log = self.logs / f"bridge-{i}.log"
            while "(SUBACK)" not in (log.read_text() if log.exists() else ""):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"bridge-{i} did not subscribe in 180 s; see {log}")
                time.sleep(0.2)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.logs / f"{name}.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise BenchError(f"stage {name} exited with {process.returncode}:\n{tail}")

    # ---- a step -----------------------------------------------------------------------------

    def run_step(
        self, step: StepSettings, *, latency: bool = False, warm_up: bool = False
    ) -> dict[str, Any]:
        """Offer ``step.rate``, measure, drain; a dict of what was seen (see `step_result`)."""
        assert self.watch is not None
        self.steps += 1
        t = self.topics
        cars = max(1, round(step.rate * step.interval))
        per = [
            cars // step.publishers + (i < cars % step.publishers) for i in range(step.publishers)
        ]
        duration = step.warmup + step.seconds
        # Chunks of ~5 ms of each publisher's traffic: the send-time granularity.
        chunk = max(1, math.ceil(step.rate / step.publishers / 200))
        start = time.time() + 6.0  # after the publishers' start-up
        start_ms = int(start * 1000)
        before = self.watch.sample()
        outputs_before = {n: end_offsets(self.kafka, n) for n in (t.scores, t.anomalies)}
        load = round(os.getloadavg()[0], 2)
        cpu_before = self._cpu_seconds()
        publishers = []
        stats_files = []
        for i, count in enumerate(per):
            if not count:
                continue
            stats_file = self.workdir / "stats" / f"sim-{self.steps}-{i}.json"
            stats_files.append(stats_file)
            publishers.append(
                self._spawn(
                    f"sim-{self.steps}-{i}",
                    [
                        "simulate",
                        "--to",
                        "mqtt",
                        "--cars",
                        str(count),
                        "--interval",
                        str(step.interval),
                        "--speedup",
                        "1",
                        "--seed",
                        str(self.seed + i),
                        "--start",
                        str(start_ms),
                        "--duration",
                        str(duration),
                        "--failure-rate",
                        str(step.failure_rate),
                        "--id-prefix",
                        f"s{self.steps}p{i}-",
                        "--chunk",
                        str(chunk),
                        "--timeout",
                        str(int(duration + 120)),
                        "--stats-json",
                        str(stats_file),
                    ],
                )
            )
        window = (start + step.warmup, start + duration)
        while any(p.poll() is None for p in publishers):
            self._check_alive_stages()
            time.sleep(0.2)
        for name in [n for n in self.processes if n.startswith(f"sim-{self.steps}-")]:
            self.processes.pop(name)
        sims = [json.loads(f.read_text()) for f in stats_files if f.exists()]
        delivered = sum(s.get("delivered", 0) for s in sims)
        self.published += delivered
        drained = self._drain(before, delivered)
        result = self._measure(step, before, window, sims, drained, load)
        result["cpu"] = cpu_per_event(cpu_before, self._cpu_seconds(), delivered)
        if latency:
            outputs_after = {n: end_offsets(self.kafka, n) for n in (t.scores, t.anomalies)}
            scores, _ = read_latencies(
                self.kafka, t.scores, outputs_before[t.scores], outputs_after[t.scores], window
            )
            alarms, _ = read_latencies(
                self.kafka,
                t.anomalies,
                outputs_before[t.anomalies],
                outputs_after[t.anomalies],
                window,
            )
            result["latency"] = percentiles(scores)
            result["anomaly_latency"] = percentiles(alarms)
            result["p99_ms"] = result["latency"]["p99_ms"]
        if not warm_up:
            logger.info(
                "step %d events/s: end to end %.0f/s, sustained %s, bottleneck %s",
                step.rate,
                result["end_to_end_per_s"],
                result["sustained"],
                result["bottleneck"],
            )
        return result

    def _cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of every stage, server and the reaped publishers.

        The publishers of a step have exited (and been reaped) when it is measured, so they
        count as this process' children; the stages and servers still run.
        """
        seconds = {"publishers": _children_cpu()}
        running = {n: p.pid for n, p in self.processes.items() if not n.startswith("sim-")}
        for name, pid in {**running, **self.servers}.items():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            seconds[name] = times.user + times.system
        return seconds

    def _check_alive_stages(self) -> None:
        for name, process in self.processes.items():
            if not name.startswith("sim-") and process.poll() is not None:
                self._check_alive()

    def _drain(self, before: Any, delivered: int, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until every delivered event is in the twin (or ``timeout``)."""
        assert self.watch is not None
        t = self.topics
        deadline = time.monotonic() + timeout
        while True:
            now = self.watch.sample()
            raw = now.ends[t.raw] - before.ends[t.raw]
            clean = now.ends[t.clean] - before.ends[t.clean]
            dlq = now.ends[t.dlq] - before.ends[t.dlq]
            scored = now.ends[t.scores] - before.ends[t.scores]
            twin = (
                now.committed[self.groups["twin"]][t.clean]
                - before.committed[self.groups["twin"]][t.clean]
            )
            pre = (
                now.committed[self.groups["preprocess"]][t.raw]
                - before.committed[self.groups["preprocess"]][t.raw]
            )
            counts = {
                "published": delivered,
                "raw": raw,
                "clean": clean,
                "dlq": dlq,
                "preprocessed": pre,
                "scored": scored,
                "twin": twin,
            }
            done = raw >= delivered and pre >= raw and scored >= clean and twin >= clean
            if done or time.monotonic() > deadline:
                counts["drained"] = done
                counts["lost"] = max(0, delivered - raw)
                counts["balanced"] = done and raw == clean + dlq
                return counts
            self._check_alive_stages()
            time.sleep(0.5)

    def _measure(
        self,
        step: StepSettings,
        before: Any,
        window: tuple[float, float],
        sims: list[dict[str, Any]],
        drained: dict[str, Any],
        load: float,
    ) -> dict[str, Any]:
        assert self.watch is not None
        t, g = self.topics, self.groups
        first, last = self.watch.near(window[0]), self.watch.near(window[1])
        seconds = max(1e-6, last.at - first.at)
        in_window = [s for s in self.watch.samples if first.at <= s.at <= last.at]
        start = window[0] - step.warmup

        def expected(at: float) -> float:
            return max(0.0, (at - start) * step.rate)

        def series(sample: Any) -> dict[str, tuple[float, float]]:
            """Per stage: (output count since the step began, lag)."""
            raw = sample.ends[t.raw] - before.ends[t.raw]
            pre = sample.committed[g["preprocess"]][t.raw]
            score = sample.committed[g["score"]][t.clean]
            twin = sample.committed[g["twin"]][t.clean]
            return {
                "bridge": (raw, expected(sample.at) - raw),
                "preprocess": (
                    pre - before.committed[g["preprocess"]][t.raw],
                    sample.ends[t.raw] - pre,
                ),
                "score": (
                    score - before.committed[g["score"]][t.clean],
                    sample.ends[t.clean] - score,
                ),
                "twin": (twin - before.committed[g["twin"]][t.clean], sample.ends[t.clean] - twin),
            }

        a, b = series(first), series(last)
        bound = step.lag_bound_s * step.rate
        stages = {}
        for name in _STAGES:
            rate = (b[name][0] - a[name][0]) / seconds
            lags = [series(s)[name][1] for s in in_window] or [b[name][1]]
            lag = max(0.0, b[name][1])
            # Kept up: the lag ends bounded and never ran away. Committed offsets move a batch
            # at a time, so over a short window the rate alone is too coarse to judge.
            ok = (
                lag <= bound and max(lags) <= 2 * bound and rate >= 0.5 * step.min_ratio * step.rate
            )
            stages[name] = {
                "rate": round(rate, 1),
                "lag": round(lag),
                "lag_max": round(max(lags)),
                "ok": ok,
            }
        late_mean = max((s.get("late_mean_ms", 0.0) for s in sims), default=0.0)
        late_max = max((s.get("late_max_ms", 0.0) for s in sims), default=0.0)
        sent = sum(s.get("events", 0) for s in sims)
        generator_ok = late_mean <= 50.0 and sent >= 0.99 * step.rate * (window[1] - start)
        bottleneck = None
        if not generator_ok:
            bottleneck = "load-generator"
        else:
            bottleneck = next((n for n in _STAGES if not stages[n]["ok"]), None)
        if bottleneck is None and not (drained["drained"] and drained["balanced"]):
            bottleneck = "lost-or-unbalanced"
        return {
            "rate": step.rate,
            "seconds": seconds,
            "window_events": int(b["twin"][0] - a["twin"][0]),
            "end_to_end_per_s": round((b["twin"][0] - a["twin"][0]) / seconds, 1),
            "stages": stages,
            "generator": {
                "sent": sent,
                "late_mean_ms": late_mean,
                "late_max_ms": late_max,
                "ok": generator_ok,
                "publishers": len(sims),
            },
            "counts": drained,
            "sustained": bottleneck is None,
            "bottleneck": bottleneck,
            "load_avg_1m": load,
        }

    def step_result(self, name: str, step: dict[str, Any]) -> BenchResult:
        """A step as a `BenchResult` (end-to-end events in the window)."""
        extra = {
            k: step[k]
            for k in (
                "rate",
                "stages",
                "generator",
                "counts",
                "sustained",
                "bottleneck",
                "load_avg_1m",
                "cpu",
            )
        }
        extra["offered_per_s"] = extra.pop("rate")
        return BenchResult(name, step["window_events"], step["seconds"], extra)

    # ---- the end ----------------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Stop the stages and return their counts over the whole run."""
        self.stop()
        stats = {}
        for name in [f"bridge-{i}" for i in range(self.bridges)] + ["preprocess", "score", "twin"]:
            path = self.workdir / "stats" / f"{name}.json"
            stats[name] = json.loads(path.read_text()) if path.exists() else {}
        bridged = sum(stats[f"bridge-{i}"].get("out", 0) for i in range(self.bridges))
        return {
            "published": self.published,
            "bridged": bridged,
            "preprocessed": stats["preprocess"].get("in", 0),
            "clean": stats["preprocess"].get("out", 0)
            - stats["preprocess"].get("dead_lettered", 0),
            "dead_lettered": stats["preprocess"].get("dead_lettered", 0),
            "scored": stats["score"].get("in", 0),
            "twin_readings": stats["twin"].get("readings", 0),
            "seconds": time.monotonic() - self.started,
        }

    def stop(self) -> None:
        """SIGTERM every process still running (then SIGKILL after 30 s)."""
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        stop_groups(list(self.processes.values()), 30.0, what="bench stage")
        self.processes.clear()

    def delete_topics(self, extra: list[str]) -> None:
        """Delete the run's topics and MQTT sessions from brokers the run did not start."""
        t = self.topics
        names = [t.raw, t.clean, t.dlq, t.anomalies, t.scores, t.models, *extra]
        for i in range(self.bridges):
            try:
                mqtt_session(self.mqtt, f"{self.prefix}-{i}", subscribe=None, expiry_s=0)
            except Exception as exc:  # cleanup must never hide the results
                logger.warning("could not delete the bridge session: %s", exc)
        delete_bench_topics(self.kafka, names)
