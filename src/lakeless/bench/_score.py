"""The score benchmark: how fast, and how soon, events are scored on their way through Kafka.

Every path scores the same pre-filled ``sensor-clean`` topic (``events`` records, by default
2 million; keyed by car id, stamped with event time) with the same real model, in one run, on
one machine, against one Kafka broker (a throwaway one on free ports unless ``--bootstrap``):
the default `lakeless.model.Autoencoder`, trained briefly on simulated healthy data, exported to
ONNX, registered and promoted on the run's own models topic.

``raw-consume`` (the ceiling)
    confluent-kafka consuming the topic with no processing at all (the scorer's consumer
    settings, batched ``consume``).
``lakeless-score-1p`` and ``lakeless-score-2p``
    `lakeless.score.run_processes` with one and two worker processes: consume, decode, ONNX
    Runtime, threshold, produce anomalies, commit after the acknowledgements.
``naive-keras-per-record``
    The talk's demo (and Kafka-ML's) way: a consumer loop that decodes each message and calls
    the Keras model's ``predict(x[None])`` on it. A sample of ``keras_sample`` messages is timed
    (after one unmeasured warm-up call) and the rate extrapolated.
``quixstreams-per-record``
    Quix Streams calling the same ONNX model on each record (``apply`` -> ``filter`` ->
    ``to_topic``), in a virtualenv of its own (Quix Streams pins an older confluent-kafka and
    pydantic than lakeless; built on first use under ``~/.cache/lakeless``, see
    `ensure_quix_venv`), on the first ``quix_events`` records; reported as skipped when the
    virtualenv cannot be built.
``http-model-server``
    ``lakeless score --via``: one scorer process sending each batch to a ``lakeless serve``
    model server (another process) over HTTP, on the first ``http_events`` records.

Throughput is steady state: for the scorers, a watcher reads the group's committed offsets
every 20 ms and the rate runs from the first commit to the last (process start, model load and
group join excluded; the wall seconds with them are in ``extra``); ``raw-consume`` runs from
its first to its last record, and Quix Streams from its first to its last scored record.

``latency`` (not a rate): a producer offers ``latency_rate`` events/s (paced every 5 ms,
every event stamped with the current time as ``ts`` and record timestamp) to a fresh topic
while one scorer process runs with ``--all-scores`` and ``--batch-ms latency_batch_ms``; a
consumer of the ``scores`` topic takes receive time minus event time for every output, and
``p50_ms``/``p99_ms`` come from ``latency_seconds`` of steady state (after ``latency_warmup``
seconds). ``batch_ms`` bounds how long a batch stays open: small batches keep the latency low,
but every batch pays a fixed cost (acknowledgement round trip, commit), so at full speed larger
batches go faster.

Nothing is asserted about speed: the report gives each path's rate, its ratio to the ceiling,
and the issue's goals (``lakeless-score-1p`` at least 0.5x ``raw-consume`` and 5x
``quixstreams-per-record``; p99 at most 25 ms at 20,000 events/s).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np
from confluent_kafka import TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._peer import cached_venv, ensure_venv, run_command, run_peer_script
from lakeless.bench._result import BenchReport, BenchResult, machine_info
from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.errors import LakelessError
from lakeless.kafka import TopicSpec, create_topics, make_admin, make_consumer, make_producer
from lakeless.lifecycle import RunLimits
from lakeless.schema import CLEAN_VERSION, FEATURES

__all__ = [
    "CEILING",
    "FULL_EVENTS",
    "GOALS",
    "LATENCY",
    "QUICK_EVENTS",
    "SCORE_PATHS",
    "ScoreBenchError",
    "ScoreBenchSettings",
    "default_quix_venv",
    "encode_rows",
    "ensure_quix_venv",
    "goals",
    "latency_result",
    "run_score_bench",
    "steady_rate",
]

logger = logging.getLogger(__name__)

#: Events in the topic with ``--quick`` (the suite then takes under a minute).
QUICK_EVENTS: Final = 150_000
#: Events in the topic by default.
FULL_EVENTS: Final = 2_000_000
#: Name of the ceiling result.
CEILING: Final = "raw-consume"
SCORE_1P: Final = "lakeless-score-1p"
SCORE_2P: Final = "lakeless-score-2p"
KERAS: Final = "naive-keras-per-record"
QUIX: Final = "quixstreams-per-record"
HTTP: Final = "http-model-server"
LATENCY: Final = "latency"
#: Every throughput result the suite reports, in order (then `LATENCY`).
SCORE_PATHS: Final = (CEILING, SCORE_1P, SCORE_2P, KERAS, QUIX, HTTP)
#: The issue's goals: (what, numerator, denominator or metric, op, bound).
GOALS: Final = (
    ("1p vs raw-consume", SCORE_1P, CEILING, ">=", 0.5),
    ("1p vs quixstreams", SCORE_1P, QUIX, ">=", 5.0),
    ("p99 latency ms", LATENCY, "p99_ms", "<=", 25.0),
)
#: What the Quix Streams virtualenv gets (a marker file records it).
QUIX_REQUIREMENTS: Final = ("quixstreams>=3,<4", "onnxruntime", "numpy")
_QUIX_MARKER: Final = ".lakeless-quix-ready"
_QUIX_SCRIPT: Final = Path(__file__).with_name("_quix_scorer.py")
_MODEL: Final = "bench-autoencoder"
_WATCH_INTERVAL: Final = 0.02
_TEXT_NULL: Final = b"\xff\xff"
_RECORD_DTYPE: Final = np.dtype(
    [("version", "u1"), ("ts", "<i8"), ("seq", "<i8")] + [(name, "<f8") for name in FEATURES]
)


class ScoreBenchError(LakelessError):
    """The score benchmark could not run (no model, topic not filled, server not ready...)."""


class ScoreBenchSettings(BaseModel):
    """What the score suite measures and how much.

    Attributes:
        events: records in the pre-filled topic (raw consume, 1p and 2p read them all).
        quick: only recorded in the report (and picks the defaults of `for_mode`).
        partitions: partitions of every topic the suite creates.
        cars: simulated cars.
        seed: simulator and model seed.
        failure_rate: simulated failures per car per hour (some events are anomalies).
        train_rows: simulated rows the model is trained on.
        epochs: training epochs of the model.
        keras_sample: messages the naive Keras loop is timed on.
        quix_events: records Quix Streams scores (the first ones of the topic).
        http_events: records the model-server path scores.
        latency_rate: offered events per second of the latency measurement.
        latency_seconds: steady-state seconds the latency is measured over.
        latency_warmup: seconds after the first output before latency counts.
        latency_batch_ms: the scorer's ``batch_ms`` during the latency measurement.
        quix: measure Quix Streams (builds its virtualenv on first use).
        quix_venv: where that virtualenv lives; ``None``: `default_quix_venv`.
        timeout: most seconds one path may take.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: int = Field(default=FULL_EVENTS, ge=1)
    quick: bool = False
    partitions: int = Field(default=6, ge=1)
    cars: int = Field(default=1000, ge=1)
    seed: int = 1
    failure_rate: float = Field(default=2.0, ge=0)
    train_rows: int = Field(default=20_000, ge=100)
    epochs: int = Field(default=3, ge=1)
    keras_sample: int = Field(default=200, ge=1)
    quix_events: int = Field(default=200_000, ge=1)
    http_events: int = Field(default=1_000_000, ge=1)
    latency_rate: int = Field(default=20_000, ge=1)
    latency_seconds: float = Field(default=10.0, gt=0)
    latency_warmup: float = Field(default=2.0, ge=0)
    latency_batch_ms: int = Field(default=5, ge=1)
    quix: bool = True
    quix_venv: Path | None = None
    timeout: float = Field(default=300.0, gt=0)

    @classmethod
    def for_mode(cls, quick: bool, events: int | None = None, **fields: Any) -> ScoreBenchSettings:
        """Settings for ``--quick`` or a full run; ``events`` overrides the mode's count."""
        count = events or (QUICK_EVENTS if quick else FULL_EVENTS)
        defaults: dict[str, Any] = {"timeout": 300.0}
        if quick:
            defaults = {
                "timeout": 60.0,
                "train_rows": 5000,
                "epochs": 1,
                "quix_events": 20_000,
                "keras_sample": 20,
                "latency_seconds": 4.0,
                "latency_warmup": 1.0,
            }
        defaults["quix_events"] = min(count, defaults.get("quix_events", 200_000))
        defaults["http_events"] = min(count, fields.pop("http_events", 1_000_000))
        return cls(events=count, quick=quick, **{**defaults, **fields})


# ---- records --------------------------------------------------------------------------------


def _text(value: str | None) -> bytes:
    if value is None:
        return _TEXT_NULL
    data = value.encode()
    return len(data).to_bytes(2, "little") + data


def encode_rows(
    ts: np.ndarray,
    seq: np.ndarray | int,
    values: np.ndarray,
    car_ids: Sequence[str],
    models: Sequence[str],
    failures: Sequence[str | None],
) -> list[bytes]:
    """``sensor-clean`` records for whole columns at once (`lakeless.schema.encode_clean` bytes).

    Example:
        >>> from lakeless.schema import decode_clean
        >>> values = np.arange(18, dtype=np.float64)[None]
        >>> record = encode_rows(np.array([5]), 7, values, ["car-1"], ["m"], [None])[0]
        >>> event = decode_clean(record)
        >>> speed = values[0, FEATURES.index("speed")]
        >>> event.car_id, event.ts, event.seq, bool(event.speed == speed)
        ('car-1', 5, 7, True)
    """
    n = len(ts)
    block = np.empty(n, _RECORD_DTYPE)
    block["version"] = CLEAN_VERSION
    block["ts"] = ts
    block["seq"] = seq
    for j, name in enumerate(FEATURES):
        block[name] = values[:, j]
    raw = block.tobytes()
    size = _RECORD_DTYPE.itemsize
    tails: dict[tuple[str, str, str | None], bytes] = {}
    out = []
    for i, key in enumerate(zip(car_ids, models, failures, strict=True)):
        tail = tails.get(key)
        if tail is None:
            tail = tails[key] = _text(key[0]) + _text(key[1]) + _text(key[2])
        out.append(raw[i * size : (i + 1) * size] + tail)
    return out


def _fleet_records(fleet: Any) -> tuple[list[bytes], list[bytes], list[int], np.ndarray, list[Any]]:
    """One fleet step as (values, keys, timestamps, features, labels)."""
    from lakeless.fleet import FAILURE_MODES

    batch = fleet.step()
    codes = batch.failure.tolist()
    labels = [FAILURE_MODES[c] if c >= 0 else None for c in codes]
    values = encode_rows(batch.ts, batch.seq, batch.values, batch.car_ids, batch.models, labels)
    keys = [car.encode() for car in batch.car_ids]
    return values, keys, batch.ts.tolist(), batch.values, labels


# ---- results --------------------------------------------------------------------------------


def steady_rate(samples: Sequence[tuple[float, int]], target: int) -> tuple[int, float]:
    """Events and seconds of the steady part of a run, from ``(time, total done)`` samples.

    The rate runs from the first sample that saw progress to the first that reached
    ``target`` (or the last one), so start-up before the first progress is left out.

    Example:
        >>> steady_rate([(0.0, 0), (1.0, 0), (1.5, 100), (2.5, 600), (3.5, 1100)], 1100)
        (1000, 2.0)
    """
    started = next(((t, n) for t, n in samples if n > 0), None)
    if started is None:
        return 0, 0.0
    done = next(((t, n) for t, n in samples if n >= target), samples[-1])
    return done[1] - started[1], done[0] - started[0]


def latency_result(latencies_ms: Sequence[float], seconds: float, **extra: Any) -> BenchResult:
    """The `LATENCY` result: outputs measured, seconds, ``p50_ms``, ``p99_ms``, ``max_ms``.

    Example:
        >>> result = latency_result([float(i) for i in range(1, 101)], 1.0)
        >>> result.events, result.extra["p50_ms"], result.extra["p99_ms"]
        (100, 50.5, 99.01)
    """
    data = np.asarray(latencies_ms, dtype=np.float64)
    stats: dict[str, Any] = {"p50_ms": None, "p99_ms": None, "max_ms": None}
    if len(data):
        p50, p99 = np.percentile(data, [50, 99])
        stats = {
            "p50_ms": round(float(p50), 2),
            "p99_ms": round(float(p99), 2),
            "max_ms": round(float(data.max()), 2),
        }
    return BenchResult(LATENCY, len(data), seconds, {**stats, **extra})


def goals(results: Sequence[BenchResult]) -> list[dict[str, Any]]:
    """Every `GOALS` entry with its measured value and whether it is met (``None``: unmeasured).

    Example:
        >>> rows = goals([BenchResult(CEILING, 100, 1.0), BenchResult(SCORE_1P, 60, 1.0)])
        >>> rows[0]["value"], rows[0]["met"], rows[1]["met"]
        (0.6, True, None)
    """
    by_name = {r.name: r for r in results}
    out = []
    for what, name, other, op, bound in GOALS:
        value: float | None = None
        result = by_name.get(name)
        if result is not None and name == LATENCY:
            measured = result.extra.get(other)
            value = float(measured) if measured is not None else None
        elif result is not None and other in by_name and by_name[other].events_per_s > 0:
            value = round(result.events_per_s / by_name[other].events_per_s, 3)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append({"goal": what, "value": value, "op": op, "bound": bound, "met": met})
    return out


def _skipped(name: str, reason: str) -> BenchResult:
    return BenchResult(name, 0, 0.0, {"skipped": True, "reason": reason})


@dataclass
class ScoreBenchReport(BenchReport):
    """A `BenchReport` whose dict also carries the issue's ``goals``."""

    def to_dict(self) -> dict[str, Any]:
        """`BenchReport.to_dict` plus ``goals`` (see `goals`)."""
        return {**super().to_dict(), "goals": goals(self.results)}

    def table(self) -> Any:
        """The rich table, with the goals and the latency in its caption."""
        table = super().table()
        lines = [
            f"{g['goal']}: {g['value']} (goal {g['op']} {g['bound']}: "
            f"{'met' if g['met'] else 'not met' if g['met'] is not None else 'unmeasured'})"
            for g in goals(self.results)
        ]
        table.caption = f"{table.caption}; " + "; ".join(lines)
        return table


# ---- the Quix Streams virtualenv ------------------------------------------------------------


def default_quix_venv() -> Path:
    """``$LAKELESS_BENCH_QUIX_VENV``, else ``$XDG_CACHE_HOME/lakeless/bench-quix-venv``."""
    return cached_venv("LAKELESS_BENCH_QUIX_VENV", "bench-quix-venv")


_run: Final = partial(run_command, error=ScoreBenchError)


def ensure_quix_venv(path: Path | None = None, *, timeout: float = 900.0) -> Path:
    """The Python of the Quix Streams virtualenv at ``path``; built there first if needed.

    Raises:
        ScoreBenchError: it is missing and could not be built (e.g. no package index).
    """
    return ensure_venv(
        path or default_quix_venv(),
        QUIX_REQUIREMENTS,
        marker=_QUIX_MARKER,
        base_python=lambda: sys.executable,
        timeout=timeout,
        run=_run,
    )


# ---- watching a consumer group's progress ---------------------------------------------------


class _CommitWatch:
    """Samples the sum of a group's committed offsets on ``topic`` every 20 ms (a thread)."""

    def __init__(self, kafka: KafkaSettings, group: str, topic: str, partitions: int, target: int):
        self.consumer = make_consumer(kafka, group)  # never subscribes: only reads offsets
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.target = target
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)

    def __enter__(self) -> _CommitWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                committed = self.consumer.committed(self.partitions, timeout=5)
            except Exception:  # a slow broker: try again
                continue
            total = sum(max(tp.offset, 0) for tp in committed)
            self.samples.append((time.monotonic(), total))
            if total >= self.target:
                return
            self._stop.wait(_WATCH_INTERVAL)

    def rate(self) -> tuple[int, float]:
        return steady_rate(self.samples or [(0.0, 0)], self.target)


def _serve(settings: Settings, model: str, port: int, timeout: float) -> None:
    """Run in a spawned process: ``lakeless serve`` on ``port``."""
    from lakeless.serve import ServeSettings, run_serve

    run_serve(settings, ServeSettings(model=model, port=port), RunLimits(timeout=timeout))


# ---- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Topics:
    clean: str
    models: str
    anomalies: str
    scores: str
    latency_clean: str
    latency_scores: str
    quix_out: str

    @classmethod
    def unique(cls, run_id: str) -> _Topics:
        prefix = f"lakeless-bench-score-{run_id}"
        parts = ("clean", "models", "anomalies", "scores", "lat-clean", "lat-scores", "quix-out")
        return cls(*(f"{prefix}-{part}" for part in parts))

    def all(self) -> list[str]:
        return list(self.__dict__.values())


class _ScoreRun:
    """One run of the suite against a given broker."""

    def __init__(self, bench: ScoreBenchSettings, kafka: KafkaSettings) -> None:
        self.bench = bench
        self.kafka = kafka
        self.run_id = uuid.uuid4().hex[:8]
        self.topics = _Topics.unique(self.run_id)
        self.model: Any = None
        self.threshold = 0.0
        self.onnx_path: Path | None = None

    def settings(self, clean: str | None = None, scores: str | None = None) -> Settings:
        topics = TopicSettings(
            clean=clean or self.topics.clean,
            models=self.topics.models,
            anomalies=self.topics.anomalies,
            scores=scores or self.topics.scores,
        )
        return Settings(kafka=self.kafka, topics=topics)

    def group(self, what: str) -> str:
        return f"lakeless-bench-{self.run_id}-{what}"

    def run(self, workdir: Path) -> list[BenchResult]:
        bench = self.bench
        models_config = {"max.message.bytes": str(64 * 1024 * 1024)}
        create_topics(
            self.kafka,
            [
                TopicSpec(
                    name,
                    1 if name == self.topics.models else bench.partitions,
                    1,
                    models_config if name == self.topics.models else {},
                )
                for name in self.topics.all()
            ],
        )
        self.train_and_register(workdir)
        self.fill()
        # Unmeasured: the first read of a fresh topic pays for the broker's cold JIT and page
        # cache; every path then reads a warm topic.
        warm = self.raw_consume("warmup")
        results = [self.raw_consume("raw", warmup_per_s=round(warm.events_per_s, 1))]
        results.append(self.lakeless(SCORE_1P, 1))
        results.append(self.lakeless(SCORE_2P, 2))
        results.append(self.naive_keras())
        results.append(self.quix(workdir))
        results.append(self.http())
        results.append(self.latency())
        return results

    def cleanup(self) -> None:
        admin = make_admin(self.kafka)
        try:
            futures = admin.delete_topics(self.topics.all(), operation_timeout=30)
        except Exception as exc:  # cleanup must never hide the results
            logger.warning("could not delete the bench topics: %s", exc)
            return
        for name, future in futures.items():
            try:
                future.result()
            except Exception as exc:
                logger.warning("could not delete topic %s: %s", name, exc)

    # ---- set-up -------------------------------------------------------------------------------

    def train_and_register(self, workdir: Path) -> None:
        from lakeless.fleet import Fleet
        from lakeless.model import Autoencoder
        from lakeless.registry import Registry

        bench = self.bench
        fleet = Fleet(bench.cars, seed=bench.seed)
        rows: list[np.ndarray] = []
        while sum(map(len, rows)) < bench.train_rows:
            rows.append(fleet.step().values)
        x = np.concatenate(rows)[: bench.train_rows].astype(np.float32)
        started = time.monotonic()
        model = Autoencoder(epochs=bench.epochs, validation_split=0.0, seed=bench.seed)
        model.fit(x)
        onnx = model.to_onnx()
        assert model.threshold is not None
        logger.info("trained and exported the model in %.1fs", time.monotonic() - started)
        self.model, self.threshold = model, float(model.threshold)
        self.onnx_path = workdir / "model.onnx"
        self.onnx_path.write_bytes(onnx)
        with Registry(self.settings()) as registry:
            record = registry.register(
                _MODEL,
                onnx,
                threshold=model.threshold,
                normalization=model.normalization,
                frameworks=model.framework_versions(),
            )
            registry.promote(_MODEL, record.version)

    def fill(self) -> None:
        from lakeless.fleet import Fleet

        bench = self.bench
        steps = -(-bench.events // bench.cars)
        start = int(time.time() * 1000) - steps * 1000
        fleet = Fleet(bench.cars, seed=bench.seed, start=start, failure_rate=bench.failure_rate)
        producer = make_producer(
            self.kafka,
            linger_ms=20,
            queue_buffering_max_messages=2_000_000,
            queue_buffering_max_kbytes=1 << 20,
        )
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None and len(failed) < 5:
                failed.append(str(err))

        started = time.monotonic()
        left = bench.events
        topic = self.topics.clean
        while left > 0:
            values, keys, stamps, _x, _labels = _fleet_records(fleet)
            stop = min(left, len(values))
            for value, key, ts in zip(values[:stop], keys[:stop], stamps[:stop], strict=True):
                while True:
                    try:
                        producer.produce(topic, value, key, timestamp=ts, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
            left -= stop
        remaining = producer.flush(bench.timeout)
        if remaining or failed:
            raise ScoreBenchError(f"could not fill the topic ({remaining} left): {failed}")
        logger.info(
            "filled %s with %d events in %.1fs", topic, bench.events, time.monotonic() - started
        )

    # ---- the paths ----------------------------------------------------------------------------

    def raw_consume(self, group: str, **extra: Any) -> BenchResult:
        bench = self.bench
        consumer = make_consumer(self.kafka, self.group(group))
        consumer.subscribe([self.topics.clean])
        logger.info("%s: %d events", CEILING, bench.events)
        began = time.monotonic()
        first_at, first_n, n = 0.0, 0, 0
        deadline = began + bench.timeout
        try:
            while n < bench.events and time.monotonic() < deadline:
                messages = consumer.consume(num_messages=10_000, timeout=0.5)
                n += sum(1 for m in messages if m.error() is None)
                if messages and not first_at:
                    first_at, first_n = time.monotonic(), n
            ended = time.monotonic()
        finally:
            consumer.close()
        events, seconds = n - first_n, ended - first_at if first_at else 0.0
        if events <= 0:  # everything came in the first call (tiny topics): wall time
            events, seconds = n, ended - began
        return BenchResult(
            CEILING,
            events,
            seconds,
            {
                "complete": n >= bench.events,
                "wall_s": round(ended - began, 3),
                **extra,
                "note": "confluent-kafka consume(), no processing (group join excluded)",
            },
        )

    def lakeless(self, name: str, processes: int) -> BenchResult:
        from lakeless.score import ScoreSettings, run_processes

        bench = self.bench
        group = self.group(name)
        config = ScoreSettings(group_id=group, model=_MODEL, log_interval=0)
        logger.info("%s: %d events", name, bench.events)
        began = time.monotonic()
        with _CommitWatch(
            self.kafka, group, self.topics.clean, bench.partitions, bench.events
        ) as watch:
            stats = run_processes(
                self.settings(),
                config,
                RunLimits(until_idle=2.0, timeout=bench.timeout),
                processes,
            )
        wall = time.monotonic() - began
        events, seconds = watch.rate()
        if events <= 0:  # everything committed in one batch (tiny topics): wall time
            events, seconds = stats.events, wall
        return BenchResult(
            name,
            events,
            seconds,
            {
                "processes": processes,
                "scored": stats.events,
                "anomalies": stats.anomalies,
                "batches": stats.batches,
                "batch_size": config.batch_size,
                "complete": stats.events >= bench.events,
                "wall_s": round(wall, 3),
                "note": "first to last commit (start-up, group join excluded)",
            },
        )

    def naive_keras(self) -> BenchResult:
        from lakeless.schema import decode_clean

        bench = self.bench
        keras_model = self.model.scoring_model()
        consumer = make_consumer(self.kafka, self.group("keras"))
        consumer.subscribe([self.topics.clean])
        producer = make_producer(self.kafka)
        sample = min(bench.keras_sample, bench.events)
        logger.info("%s: a sample of %d messages", KERAS, sample)

        def score_one(value: bytes) -> float:
            event = decode_clean(value)
            x = np.array([getattr(event, f) for f in FEATURES], dtype=np.float32)
            out = keras_model.predict(x[None], verbose=0)
            return float(np.asarray(out["score"]).reshape(-1)[0])

        try:
            messages: list[Any] = []
            deadline = time.monotonic() + bench.timeout
            while len(messages) < sample + 1 and time.monotonic() < deadline:
                messages += [m for m in consumer.consume(sample + 1, 0.5) if m.error() is None]
            if not messages:
                return _skipped(KERAS, "no message read")
            score_one(messages[0].value())  # the first predict traces the function: not timed
            anomalies = 0
            began = time.perf_counter()
            for message in messages[1 : sample + 1]:
                if score_one(message.value()) > self.threshold:
                    anomalies += 1
                    producer.produce(self.topics.anomalies, message.value(), message.key())
                producer.poll(0)
            seconds = time.perf_counter() - began
            producer.flush(10)
        finally:
            consumer.close()
        timed = len(messages[1 : sample + 1])
        return BenchResult(
            KERAS,
            timed,
            seconds,
            {
                "sample": timed,
                "extrapolated": True,
                "anomalies": anomalies,
                "note": f"model.predict(x[None]) per message, {timed}-message sample",
            },
        )

    def quix(self, workdir: Path) -> BenchResult:
        bench = self.bench
        if not bench.quix:
            return _skipped(QUIX, "disabled (--no-quix)")
        try:
            python = ensure_quix_venv(bench.quix_venv)
        except ScoreBenchError as exc:
            logger.warning("%s skipped: %s", QUIX, exc)
            return _skipped(QUIX, str(exc))
        expected = bench.quix_events
        args = {
            "servers": self.kafka.bootstrap_servers,
            "topic": self.topics.clean,
            "output": self.topics.quix_out,
            "group_id": self.group("quix"),
            "onnx_path": str(self.onnx_path),
            "threshold": self.threshold,
            "expected": expected,
            "timeout": bench.timeout,
        }
        logger.info("%s: %d events in %s", QUIX, expected, python)
        env = {**os.environ, "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)
        out = run_peer_script(
            QUIX, python, _QUIX_SCRIPT, args, timeout=bench.timeout + 60, env=env, cwd=workdir
        )
        if isinstance(out, BenchResult):
            return out
        return BenchResult(
            QUIX,
            int(out["events"]),
            float(out["seconds"]),
            {
                "complete": bool(out["complete"]),
                "anomalies": out.get("anomalies"),
                "quixstreams": out.get("quixstreams"),
                "note": f"apply(onnx per record) -> filter -> to_topic, first {expected} events",
            },
        )

    def http(self) -> BenchResult:
        import httpx

        from lakeless.score import ScoreSettings, run_processes
        from lakeless.serve import HttpScorerFactory
        from lakeless.stack import free_port

        bench = self.bench
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        context = mp.get_context("spawn")
        server = context.Process(
            target=_serve,
            args=(self.settings(), _MODEL, port, bench.timeout + 120),
            name="bench-serve",
        )
        server.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).json().get("ready"):
                        break
                if time.monotonic() > deadline or not server.is_alive():
                    return BenchResult(HTTP, 0, 0.0, {"failed": True, "reason": "no server"})
                time.sleep(0.2)
            group = self.group("http")
            events = bench.http_events
            config = ScoreSettings(group_id=group, model=_MODEL, log_interval=0)
            logger.info("%s: %d events via %s", HTTP, events, url)
            began = time.monotonic()
            with _CommitWatch(
                self.kafka, group, self.topics.clean, bench.partitions, events
            ) as watch:
                stats = run_processes(
                    self.settings(),
                    config,
                    RunLimits(count=events, until_idle=2.0, timeout=bench.timeout),
                    1,
                    scorer_factory=HttpScorerFactory(url),
                )
            wall = time.monotonic() - began
        finally:
            if server.pid is not None and server.is_alive():
                os.kill(server.pid, 15)
            server.join(15)
            if server.is_alive():
                server.kill()
        scored, seconds = watch.rate()
        if scored <= 0:  # everything committed in one batch (tiny topics): wall time
            scored, seconds = stats.events, wall
        return BenchResult(
            HTTP,
            scored,
            seconds,
            {
                "scored": stats.events,
                "complete": stats.events >= events,
                "wall_s": round(wall, 3),
                "note": f"score --via serve (one POST per batch), first {events} events",
            },
        )

    def latency(self) -> BenchResult:
        from lakeless.fleet import Fleet
        from lakeless.score import ScoreSettings, run_processes

        bench = self.bench
        group = self.group("latency")
        config = ScoreSettings(
            group_id=group,
            model=_MODEL,
            log_interval=0,
            all_scores=True,
            batch_ms=bench.latency_batch_ms,
            linger_ms=0,
        )
        fleet = Fleet(bench.cars, seed=bench.seed)
        template, keys, _ts, _x, _labels = _fleet_records(fleet)
        tails = [value[9:] for value in template]  # after version and ts
        state = _LatencyState(
            first_output=threading.Event(), stop=threading.Event(), latencies=[], offered=0
        )
        producer_thread = threading.Thread(
            target=self._offer, args=(state, tails, keys), name="offer", daemon=True
        )
        reader = threading.Thread(target=self._read_scores, args=(state,), name="read", daemon=True)
        logger.info(
            "%s: %d events/s for %.0f s (batch_ms=%d)",
            LATENCY,
            bench.latency_rate,
            bench.latency_seconds,
            bench.latency_batch_ms,
        )
        reader.start()
        producer_thread.start()
        try:
            stats = run_processes(
                self.settings(self.topics.latency_clean, self.topics.latency_scores),
                config,
                RunLimits(until_idle=1.0, timeout=bench.timeout),
                1,
            )
        finally:
            state.stop.set()
            producer_thread.join(10)
            reader.join(10)
        return latency_result(
            state.latencies,
            state.window,
            offered_per_s=round(state.offered_rate, 1),
            target_per_s=bench.latency_rate,
            batch_ms=bench.latency_batch_ms,
            scored=stats.events,
            note="event time -> score record received, steady state",
        )

    def _offer(self, state: _LatencyState, tails: list[bytes], keys: list[bytes]) -> None:
        """Produce ``latency_rate`` events/s, stamped now, until the window is over."""
        bench = self.bench
        producer = make_producer(self.kafka, linger_ms=0)
        topic = self.topics.latency_clean
        tick = 0.005
        per_tick = bench.latency_rate * tick
        began = time.monotonic()
        sent = 0
        i = 0
        n = len(tails)
        measured_from: float | None = None
        try:
            while not state.stop.is_set():
                now = time.monotonic()
                if measured_from is None and state.first_output.is_set():
                    measured_from = now + bench.latency_warmup
                    state.window_start_ms = int(time.time() * 1000 + bench.latency_warmup * 1000)
                if measured_from is not None and now >= measured_from + bench.latency_seconds:
                    state.window_end_ms = int(time.time() * 1000)
                    state.offered_rate = sent / (now - began)
                    break
                due = int((now - began) / tick * per_tick) + int(per_tick)
                if sent < due:
                    ts = int(time.time() * 1000)
                    prefix = bytes((CLEAN_VERSION,)) + ts.to_bytes(8, "little", signed=True)
                    for _ in range(due - sent):
                        j = i % n
                        with contextlib.suppress(BufferError):
                            producer.produce(topic, prefix + tails[j], keys[j], timestamp=ts)
                        i += 1
                    sent = due
                    producer.poll(0)
                time.sleep(max(0.0, began + (sent / per_tick) * tick - time.monotonic()))
                if time.monotonic() - began > bench.timeout:
                    break
            state.offered = sent
        finally:
            producer.flush(10)

    def _read_scores(self, state: _LatencyState) -> None:
        consumer = make_consumer(
            self.kafka, self.group("latency-reader"), fetch_wait_max_ms=1, fetch_min_bytes=1
        )
        consumer.subscribe([self.topics.latency_scores])
        try:
            while not state.stop.is_set():
                messages = consumer.consume(num_messages=10_000, timeout=0.05)
                if not messages:
                    continue
                now_ms = time.time() * 1000
                state.first_output.set()
                start, end = state.window_start_ms, state.window_end_ms
                for message in messages:
                    if message.error() is not None:
                        continue
                    ts = message.timestamp()[1]
                    if start and ts >= start and (not end or ts < end):
                        state.latencies.append(now_ms - ts)
        finally:
            consumer.close()


@dataclass
class _LatencyState:
    first_output: threading.Event
    stop: threading.Event
    latencies: list[float]
    offered: int
    offered_rate: float = 0.0
    window_start_ms: int = 0
    window_end_ms: int = 0

    @property
    def window(self) -> float:
        if self.window_start_ms and self.window_end_ms:
            return max(0.0, (self.window_end_ms - self.window_start_ms) / 1000)
        return 0.0


@contextlib.contextmanager
def _throwaway_kafka(workdir: Path) -> Iterator[KafkaSettings]:
    from lakeless.stack import KafkaBroker, free_port

    broker = KafkaBroker(workdir, free_port(), free_port(), tiered_storage=False, heap="1g")
    broker.start()
    try:
        yield KafkaSettings(bootstrap_servers=broker.bootstrap)
    finally:
        broker.stop()


def run_score_bench(
    bench: ScoreBenchSettings | None = None, kafka: KafkaSettings | None = None
) -> ScoreBenchReport:
    """Run the score suite; returns a report with `SCORE_PATHS`, `LATENCY` and the goals.

    Args:
        bench: what to measure (default: a full run).
        kafka: an existing cluster to use; ``None`` starts a throwaway broker for the run.

    Raises:
        ScoreBenchError: the model or the topic could not be prepared.
        lakeless.errors.StackError: the throwaway broker did not start.
    """
    import confluent_kafka

    bench = bench or ScoreBenchSettings()
    started = time.monotonic()
    machine = machine_info()
    with (
        tempfile.TemporaryDirectory(prefix="lakeless-bench-score-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        throwaway = kafka is None
        if kafka is None:
            kafka = stack.enter_context(_throwaway_kafka(workdir / "kafka"))
        run = _ScoreRun(bench, kafka)
        try:
            results = run.run(workdir)
        finally:
            if not throwaway:
                run.cleanup()
    machine |= {
        "librdkafka": confluent_kafka.libversion()[0],
        "broker": "throwaway" if throwaway else kafka.bootstrap_servers,
        "load_avg_1m_after": machine_info().get("load_avg_1m"),
    }
    return ScoreBenchReport(
        "score",
        results,
        ceiling=CEILING,
        quick=bench.quick,
        machine=machine,
        wall_seconds=time.monotonic() - started,
    )
