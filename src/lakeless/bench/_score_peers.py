"""The score suite's peers: naive Keras, Quix Streams, a model server, Kafka Streams.

What each measures is told in `lakeless.bench._score` (``naive-keras-per-record``,
``quixstreams-per-record``, ``http-model-server``, ``kafka-streams-per-record`` and
``kafka-streams-batched``). Each path is a function of the suite's run
(`lakeless.bench._score._ScoreRun`: its broker, topics, model and consumer groups). Quix
Streams runs in a virtualenv of its own (`ensure_quix_venv`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from lakeless.bench._jvm import Mode, run_kafka_streams
from lakeless.bench._peer import cached_venv, ensure_venv, run_command, run_peer_script
from lakeless.bench._result import BenchResult, skipped
from lakeless.bench._score_report import HTTP, KERAS, QUIX, run_watched
from lakeless.bench._score_settings import MODEL, ScoreBenchError
from lakeless.config import Settings
from lakeless.fleet._schema import FEATURES, SCHEMA
from lakeless.kafka import make_consumer, make_producer
from lakeless.lifecycle import RunLimits
from lakeless.schema import CleanCodec, Decoder

if TYPE_CHECKING:
    from lakeless.bench._score import _ScoreRun

__all__ = [
    "QUIX_REQUIREMENTS",
    "default_quix_venv",
    "ensure_quix_venv",
    "http",
    "kafka_streams",
    "naive_keras",
    "quix",
]

logger = logging.getLogger(__name__)

#: What the Quix Streams virtualenv gets (a marker file records it).
QUIX_REQUIREMENTS: Final = ("quixstreams>=3,<4", "onnxruntime", "numpy")
_QUIX_MARKER: Final = ".lakeless-quix-ready"
_QUIX_SCRIPT: Final = Path(__file__).with_name("_quix_scorer.py")


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


# ---- the paths ------------------------------------------------------------------------------


def kafka_streams(run: _ScoreRun, mode: Mode) -> BenchResult:
    """The Kafka Streams scorer of ``jvm/streams`` on the same topic and model (one JVM)."""
    from lakeless.examples import schema_path

    logger.info("kafka-streams-%s: %d events", mode, run.bench.events)
    return run_kafka_streams(
        run.kafka,
        clean_topic=run.topics.clean,
        records=run.bench.events,
        mode=mode,
        models_topic=run.topics.models,
        model=MODEL,
        anomalies_topic=run.topics.anomalies,
        schema_file=Path(schema_path("car-fleet")),
        timeout=run.bench.timeout,
    )


def naive_keras(run: _ScoreRun) -> BenchResult:
    """`KERAS`: the Keras model's ``predict(x[None])`` per message, timed on a sample."""
    decoder = Decoder(SCHEMA)
    bench = run.bench
    keras_model = run.model.scoring_model()
    consumer = make_consumer(run.kafka, run.group("keras"))
    consumer.subscribe([run.topics.clean])
    producer = make_producer(run.kafka)
    sample = min(bench.keras_sample, bench.events)
    logger.info("%s: a sample of %d messages", KERAS, sample)

    def score_one(value: bytes) -> float:
        x = decoder.decode([value]).features()[0]
        out = keras_model.predict(x[None], verbose=0)
        return float(np.asarray(out["score"]).reshape(-1)[0])

    try:
        messages: list[Any] = []
        deadline = time.monotonic() + bench.timeout
        while len(messages) < sample + 1 and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(sample + 1, 0.5) if m.error() is None]
        if not messages:
            return skipped(KERAS, "no message read")
        score_one(messages[0].value())  # the first predict traces the function: not timed
        anomalies = 0
        began = time.perf_counter()
        for message in messages[1 : sample + 1]:
            if score_one(message.value()) > run.threshold:
                anomalies += 1
                producer.produce(run.topics.anomalies, message.value(), message.key())
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


def quix(run: _ScoreRun, workdir: Path) -> BenchResult:
    """`QUIX`: Quix Streams scoring the first ``quix_events`` records in its virtualenv."""
    bench = run.bench
    if not bench.quix:
        return skipped(QUIX, "disabled (--no-quix)")
    try:
        python = ensure_quix_venv(bench.quix_venv)
    except ScoreBenchError as exc:
        logger.warning("%s skipped: %s", QUIX, exc)
        return skipped(QUIX, str(exc))
    expected = bench.quix_events
    args = {
        "servers": run.kafka.bootstrap_servers,
        "topic": run.topics.clean,
        "output": run.topics.quix_out,
        "group_id": run.group("quix"),
        "onnx_path": str(run.onnx_path),
        "threshold": run.threshold,
        "expected": expected,
        "timeout": bench.timeout,
        # The features' place in a clean record (they are contiguous, in schema order).
        "features_at": CleanCodec(SCHEMA).offset(FEATURES[0]),
        "n_features": len(FEATURES),
    }
    logger.info("%s: %d events in %s", QUIX, expected, python)
    return run_peer_script(
        QUIX,
        python,
        _QUIX_SCRIPT,
        args,
        timeout=bench.timeout + 60,
        keep=("anomalies", "quixstreams"),
        cwd=workdir,
        note=f"apply(onnx per record) -> filter -> to_topic, first {expected} events",
    )


def http(run: _ScoreRun) -> BenchResult:
    """`HTTP`: one scorer process sending each batch to a ``lakeless serve`` process."""
    import httpx

    from lakeless.score import ScoreSettings, run_processes
    from lakeless.serve import HttpScorerFactory
    from lakeless.stack import free_port

    bench = run.bench
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    context = mp.get_context("spawn")
    server = context.Process(
        target=_serve,
        args=(run.settings(), MODEL, port, bench.timeout + 120),
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
        group = run.group("http")
        events = bench.http_events
        config = ScoreSettings(group_id=group, model=MODEL, log_interval=0)
        settings = run.settings(score=config)
        limits = RunLimits(count=events, until_idle=2.0, timeout=bench.timeout)
        logger.info("%s: %d events via %s", HTTP, events, url)
        stats, scored, seconds, wall = run_watched(
            run.kafka,
            group,
            run.topics.clean,
            bench.partitions,
            events,
            lambda: run_processes(settings, None, limits, 1, scorer_factory=HttpScorerFactory(url)),
        )
    finally:
        if server.pid is not None and server.is_alive():
            os.kill(server.pid, 15)
        server.join(15)
        if server.is_alive():
            server.kill()
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


def _serve(settings: Settings, model: str, port: int, timeout: float) -> None:
    """Run in a spawned process: ``lakeless serve`` on ``port``."""
    from lakeless.serve import ServeSettings, run_serve

    serve = ServeSettings(model=model, port=port, timeout=timeout)
    run_serve(settings.model_copy(update={"serve": serve}))
