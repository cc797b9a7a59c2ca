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
    `lakeless.bench._score_peers.ensure_quix_venv`), on the first ``quix_events`` records;
    reported as skipped when the virtualenv cannot be built.
``http-model-server``
    ``lakeless score --via``: one scorer process sending each batch to a ``lakeless serve``
    model server (another process) over HTTP, on the first ``http_events`` records.
``kafka-streams-per-record`` and ``kafka-streams-batched``
    The Kafka Streams scorer of ``jvm/streams`` (ONNX Runtime for Java, the same registry
    record), one ONNX call per record (the talk's way) or per batch, on the whole topic; see
    `lakeless.bench._jvm` (skipped when the module is not built).

Throughput is steady state: for the scorers, a watcher reads the group's committed offsets
every 20 ms and the rate runs from the first commit to the last (process start, model load and
group join excluded; the wall seconds with them are in ``extra``); ``raw-consume`` runs from
its first to its last record, and Quix Streams from its first to its last scored record.

Latency (not a rate), measured by `lakeless.bench._latency.LatencyProbe`: ``latency_rate``
events/s offered (paced every 5 ms, every event stamped with the current time as ``ts``) to a
fresh topic, receive time minus event time of every output taken by a live reader over
``latency_seconds`` (after ``latency_warmup`` seconds at the rate; start-up is left out: the
probe offers a trickle until the first output). The three are run interleaved
``latency_repeats`` times; each reports the median ``p50_ms``/``p99_ms``, every run's and the
spread:

``latency``
    One scorer process with ``--all-scores``, ``--batch-ms latency_batch_ms`` and
    ``--linger-ms 0``; the output is its score record (event time in the JSON).
``relay-latency`` (the floor of a stage)
    The same `lakeless.kafka.BatchLoop`, consumer and producer settings in a process of its
    own, re-producing every record unchanged: no decoding, no model. Same rate, same records,
    same partitions, measured the same way (the event time read from the relayed record).
``kafka-e2e-latency`` (the floor of Kafka)
    Kafka's own ``org.apache.kafka.tools.EndToEndLatency`` (``acks=all``, records of the clean
    size): one record at a time, sent synchronously and polled back; the tool floors each
    latency to whole milliseconds.

A run *saturates* when fewer than 95 % of the offered events/s came out during its window:
the system fell behind and its "latency" is a backlog; the result then says
``saturated: true`` and the report prints it. ``batch_ms`` bounds how long a batch stays
open: small batches keep the latency low, but every batch pays a fixed cost (acknowledgement
round trip, commit), so at full speed larger batches go faster. Except with ``--quick``, one
unmeasured run of the scorer and of the relay comes first (cold topics, broker and process
otherwise make the first run's tail several times the others'). ``--latency-only`` measures
only these three.

Nothing is asserted about speed: the report gives each path's rate, its ratio to the ceiling,
and the issue's goals (``lakeless-score-1p`` at least 0.5x ``raw-consume`` and 5x
``quixstreams-per-record``, at least 1x either Kafka Streams scorer; p99 at most 25 ms at
20,000 events/s and at most 1.5x the relay's).

The suite's modules: this one runs it (the set-up, ``raw-consume`` and the lakeless scorers);
``_score_settings`` holds `ScoreBenchSettings`, ``_score_peers`` the peers' paths (naive Keras,
Quix Streams, the model server, Kafka Streams), ``_score_latency`` the latency paths and
``_score_report`` the path names, the goals and the report.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeless.bench._harness import delete_bench_topics, kafka_facts, throwaway_kafka_unless
from lakeless.bench._result import BenchResult, machine_info
from lakeless.bench._rows import produce_fleet
from lakeless.bench._score_latency import latencies
from lakeless.bench._score_peers import http, kafka_streams, naive_keras, quix
from lakeless.bench._score_report import CEILING, SCORE_1P, SCORE_2P, ScoreBenchReport, run_watched
from lakeless.bench._score_settings import MODEL, ScoreBenchError, ScoreBenchSettings
from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.fleet._schema import FEATURES
from lakeless.kafka import TopicSpec, create_topics, make_consumer
from lakeless.lifecycle import RunLimits

__all__ = ["run_score_bench"]

logger = logging.getLogger(__name__)


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
    relay_in: str
    relay_out: str
    e2e: str

    @classmethod
    def unique(cls, run_id: str) -> _Topics:
        prefix = f"lakeless-bench-score-{run_id}"
        parts = (
            "clean",
            "models",
            "anomalies",
            "scores",
            "lat-clean",
            "lat-scores",
            "quix-out",
            "relay-in",
            "relay-out",
            "e2e",
        )
        return cls(*(f"{prefix}-{part}" for part in parts))

    def config(self, name: str) -> dict[str, str]:
        """Topic configs: room for a model; the broker's clock on the latency outputs."""
        if name == self.models:
            return {"max.message.bytes": str(64 * 1024 * 1024)}
        if name in (self.latency_scores, self.relay_out):
            return {"message.timestamp.type": "LogAppendTime"}
        return {}

    def all(self) -> list[str]:
        return list(self.__dict__.values())


class _ScoreRun:
    """One run of the suite against a given broker.

    The peers' paths (`lakeless.bench._score_peers`) and the latency paths
    (`lakeless.bench._score_latency`) are functions of it.
    """

    def __init__(self, bench: ScoreBenchSettings, kafka: KafkaSettings) -> None:
        self.bench = bench
        self.kafka = kafka
        self.run_id = uuid.uuid4().hex[:8]
        self.topics = _Topics.unique(self.run_id)
        self.model: Any = None
        self.threshold = 0.0
        self.onnx_path: Path | None = None

    def settings(
        self, clean: str | None = None, scores: str | None = None, **sections: Any
    ) -> Settings:
        topics = TopicSettings(
            clean=clean or self.topics.clean,
            models=self.topics.models,
            anomalies=self.topics.anomalies,
            scores=scores or self.topics.scores,
        )
        return Settings(kafka=self.kafka, topics=topics, **sections)

    def group(self, what: str) -> str:
        return f"lakeless-bench-{self.run_id}-{what}"

    def run(self, workdir: Path) -> list[BenchResult]:
        bench = self.bench
        create_topics(
            self.kafka,
            [
                TopicSpec(
                    name,
                    1 if name == self.topics.models else bench.partitions,
                    1,
                    self.topics.config(name),
                )
                for name in self.topics.all()
            ],
        )
        self.train_and_register(workdir)
        if bench.latency_only:
            return latencies(self)
        self.fill()
        # Unmeasured: the first read of a fresh topic pays for the broker's cold JIT and page
        # cache; every path then reads a warm topic.
        warm = self.raw_consume("warmup")
        results = [self.raw_consume("raw", warmup_per_s=round(warm.events_per_s, 1))]
        results.append(self.lakeless(SCORE_1P, 1))
        results.append(self.lakeless(SCORE_2P, 2))
        results.append(naive_keras(self))
        results.append(quix(self, workdir))
        results.append(http(self))
        results.append(kafka_streams(self, "per-record"))
        results.append(kafka_streams(self, "batched"))
        results += latencies(self)
        return results

    def cleanup(self) -> None:
        delete_bench_topics(self.kafka, self.topics.all())

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
                MODEL,
                onnx,
                threshold=model.threshold,
                features=FEATURES,
                normalization=model.normalization,
                frameworks=model.framework_versions(),
            )
            registry.promote(MODEL, record.version)

    def fill(self) -> None:
        bench = self.bench
        produce_fleet(
            self.kafka,
            self.topics.clean,
            bench.events,
            cars=bench.cars,
            seed=bench.seed,
            timeout=bench.timeout,
            error=ScoreBenchError,
            failure_rate=bench.failure_rate,
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
        config = ScoreSettings(group_id=group, model=MODEL, log_interval=0)
        settings = self.settings(score=config)
        limits = RunLimits(until_idle=2.0, timeout=bench.timeout)
        logger.info("%s: %d events", name, bench.events)
        stats, events, seconds, wall = run_watched(
            self.kafka,
            group,
            self.topics.clean,
            bench.partitions,
            bench.events,
            lambda: run_processes(settings, None, limits, processes),
        )
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


def run_score_bench(
    bench: ScoreBenchSettings | None = None, kafka: KafkaSettings | None = None
) -> ScoreBenchReport:
    """Run the score suite; returns a report with `SCORE_PATHS`, `LATENCY_PATHS`, the goals.

    Args:
        bench: what to measure (default: a full run).
        kafka: an existing cluster to use; ``None`` starts a throwaway broker for the run.

    Raises:
        ScoreBenchError: the model or the topic could not be prepared.
        lakeless.errors.StackError: the throwaway broker did not start.
    """
    bench = bench or ScoreBenchSettings()
    started = time.monotonic()
    machine = machine_info()
    throwaway = kafka is None
    with (
        tempfile.TemporaryDirectory(prefix="lakeless-bench-score-") as tmp,
        throwaway_kafka_unless(kafka, Path(tmp) / "kafka") as settings,
    ):
        run = _ScoreRun(bench, settings)
        try:
            results = run.run(Path(tmp))
        finally:
            if not throwaway:
                run.cleanup()
    machine |= kafka_facts(settings, throwaway=throwaway)
    return ScoreBenchReport.finished(
        "score", results, started=started, machine=machine, ceiling=CEILING, quick=bench.quick
    )
