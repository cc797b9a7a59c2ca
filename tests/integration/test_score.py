"""The score stage against a real broker: anomalies, hot swap, kill -9, refused models, outputs
of year-old readings that retention keeps."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from confluent_kafka import Message

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import car_fleet
from lakeless.fleet import fleet_events
from lakeless.kafka import make_producer
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.registry import ModelRecord, Registry, RegistrySettings, StageChange, build_record
from lakeless.registry._log import append, make_registry_producer
from lakeless.schema import CleanCodec
from lakeless.schema.outputs import OutputCodec
from lakeless.score import ScoreError, ScoreSettings, ScoreStage, run_processes
from lakeless.testing.kafka import committed_offsets, read_topic
from lakeless.testing.models import FEATURES, make_test_onnx
from lakeless.testing.waiting import wait_for

SensorEvent = Any  # an event of the car schema's generated type
CODEC = CleanCodec(car_fleet())
OUTPUTS = OutputCodec(car_fleet())

MODELS_TOPIC_CONFIG = {"max.message.bytes": str(64 * 1024 * 1024)}
MODEL = "car-ae"
PARTITIONS = 3


@pytest.fixture
def settings(kafka: KafkaSettings, new_topic: Callable[..., str]) -> Settings:
    topics = TopicSettings(
        clean=new_topic(partitions=PARTITIONS),
        models=new_topic(partitions=1, **MODELS_TOPIC_CONFIG),
        anomalies=new_topic(partitions=PARTITIONS),
        scores=new_topic(partitions=PARTITIONS),
    )
    return Settings(kafka=kafka, topics=topics)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        yield registry


def events(
    count: int, seed: int = 1, failure_rate: float = 0.0, cars: int = 20
) -> list[SensorEvent]:
    return list(fleet_events(cars=cars, seed=seed, count=count, failure_rate=failure_rate, ramp=5))


def matrix(items: Sequence[SensorEvent]) -> np.ndarray:
    return np.array([[getattr(e, f) for f in FEATURES] for e in items], np.float64)


def healthy_model(
    bias: float = 0.0, fit: Sequence[SensorEvent] | None = None
) -> tuple[bytes, float]:
    """A z-score model fitted on healthy fleet data, and a threshold above its healthy scores."""
    healthy = [e for e in fit if e.failure is None] if fit else events(4000, seed=99)
    data = matrix(healthy)
    mean, std = data.mean(axis=0), data.std(axis=0) + 1e-3
    onnx = make_test_onnx(mean=mean.tolist(), scale=(1 / std).tolist(), bias=bias)
    scores, _ = OnnxScorer(onnx, len(FEATURES)).score(data)
    return onnx, float(scores.max()) * 1.2


def produce_events(kafka: KafkaSettings, topic: str, items: Sequence[SensorEvent]) -> None:
    producer = make_producer(kafka)
    for event in items:
        while True:
            try:
                producer.produce(
                    topic, CODEC.encode(event), event.car_id.encode(), timestamp=event.ts
                )
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def score_settings(settings: Settings, **options: object) -> Settings:
    config = ScoreSettings(  # type: ignore[arg-type]
        group_id=f"score-{uuid.uuid4().hex[:8]}",
        model=MODEL,
        log_interval=0,
        **options,
    )
    return settings.model_copy(update={"score": config})


def stage(settings: Settings, **options: object) -> ScoreStage:
    return ScoreStage(score_settings(settings, **options))


def run_in_thread(scorer: ScoreStage, limits: RunLimits) -> threading.Thread:
    thread = threading.Thread(target=scorer.run, args=(limits,), daemon=True)
    thread.start()
    return thread


def decode_score(value: bytes | None) -> Any:
    assert value is not None
    return OUTPUTS.decode_score(value)


def decode_anomaly(value: bytes | None) -> Any:
    assert value is not None
    return OUTPUTS.decode_anomaly(value)


def scores_by_key(messages: list[Message]) -> Counter[tuple[str, int]]:
    return Counter((s.key, s.sequence) for s in (decode_score(m.value()) for m in messages))


def test_failures_become_anomalies(settings: Settings, registry: Registry) -> None:
    items = events(3000, seed=7, failure_rate=30)
    onnx, threshold = healthy_model(fit=items)
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    labelled = sum(1 for e in items if e.failure)
    assert labelled > 100
    produce_events(settings.kafka, settings.topics.clean, items)

    scorer = stage(settings, all_scores=True, batch_size=500)
    stats = scorer.run(RunLimits(until_idle=3, timeout=120))

    assert stats.events == len(items) and stats.by_model == {f"{MODEL}:1": len(items)}
    expected_scores, _ = OnnxScorer(onnx, len(FEATURES)).score(matrix(items))
    expected = {
        (e.car_id, e.seq) for e, s in zip(items, expected_scores, strict=True) if s > threshold
    }
    anomalies = [
        decode_anomaly(m.value())
        for m in read_topic(settings.kafka, settings.topics.anomalies, expected=len(expected))
    ]
    assert stats.anomalies == len(anomalies) == len(expected) > 0
    assert {(a.key, a.sequence) for a in anomalies} == expected
    for anomaly in anomalies:
        assert (anomaly.model, anomaly.model_version) == (MODEL, 1)
        assert anomaly.score > anomaly.threshold == pytest.approx(threshold)
        assert len(anomaly.top_features) == 3
        errors = [t.error for t in anomaly.top_features]
        assert errors == sorted(errors, reverse=True)
        # The threshold is above every healthy score: only injected failures are flagged.
        assert anomaly.label is not None
    raw = msgspec.json.decode(
        read_topic(settings.kafka, settings.topics.anomalies, expected=len(expected))[0].value()
    )
    assert {"car_id", "ts", "seq", "failure", "source"} <= set(raw)  # the schema's names
    assert scores_by_key(
        read_topic(settings.kafka, settings.topics.scores, expected=len(items))
    ) == (Counter((e.car_id, e.seq) for e in items))


def test_hot_swap_exactly_once_no_gap_no_duplicate(settings: Settings, registry: Registry) -> None:
    onnx, threshold = healthy_model()
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    items = events(4000, seed=3, failure_rate=10)
    first, second = items[:2000], items[2000:]
    produce_events(settings.kafka, settings.topics.clean, first)

    scorer = stage(settings, all_scores=True, guarantee="exactly-once", batch_size=300)
    thread = run_in_thread(scorer, RunLimits(timeout=120))
    wait_for(lambda: scorer.stats.events == len(first))
    onnx2, threshold2 = healthy_model(bias=0.5)
    registry.register(MODEL, onnx2, threshold=threshold2, features=FEATURES)
    registry.promote(MODEL, 2)
    wait_for(lambda: scorer.live is not None and scorer.live.version == 2)
    produce_events(settings.kafka, settings.topics.clean, second)
    wait_for(lambda: scorer.stats.events == len(items))
    scorer.request_stop()
    thread.join(30)
    assert not thread.is_alive()

    messages = read_topic(settings.kafka, settings.topics.scores, expected=len(items))
    assert scores_by_key(messages) == Counter((e.car_id, e.seq) for e in items)
    version = {
        (s.key, s.sequence): s.model_version
        for s in map(decode_score, [m.value() for m in messages])
    }
    assert {version[(e.car_id, e.seq)] for e in first} == {1}
    assert {version[(e.car_id, e.seq)] for e in second} == {2}
    per_partition: dict[int, list[int]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        per_partition[message.partition()].append(decode_score(message.value()).model_version)
    for versions in per_partition.values():
        assert versions == sorted(versions)
    assert scorer.stats.by_model == {f"{MODEL}:1": len(first), f"{MODEL}:2": len(second)}


def test_corrupt_model_is_refused_and_old_model_keeps_scoring(
    settings: Settings, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    onnx, threshold = healthy_model()
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    items = events(2000, seed=5)
    produce_events(settings.kafka, settings.topics.clean, items[:1000])

    scorer = stage(settings, all_scores=True, batch_size=250)
    caplog.set_level(logging.INFO)
    thread = run_in_thread(scorer, RunLimits(timeout=120))
    wait_for(lambda: scorer.stats.events == 1000)
    # A version 2 whose checksum does not match its bytes, promoted behind the registry's back.
    good = build_record(MODEL, 2, make_test_onnx(bias=1.0), threshold=threshold, features=FEATURES)
    bad = msgspec.structs.replace(good, sha256="0" * 64)
    producer = make_registry_producer(settings.kafka)
    append(producer, settings.topics.models, bad)
    append(producer, settings.topics.models, StageChange(name=MODEL, version=2, stage="live", at=1))
    wait_for(lambda: "refused model car-ae v2" in caplog.text)
    produce_events(settings.kafka, settings.topics.clean, items[1000:])
    wait_for(lambda: scorer.stats.events == len(items))
    scorer.request_stop()
    thread.join(30)

    assert scorer.live is not None and scorer.live.version == 1
    messages = read_topic(settings.kafka, settings.topics.scores, expected=len(items))
    assert {decode_score(m.value()).model_version for m in messages} == {1}
    assert scores_by_key(messages) == Counter((e.car_id, e.seq) for e in items)


def test_waits_for_a_first_live_model(
    settings: Settings, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    items = events(500, seed=2)
    produce_events(settings.kafka, settings.topics.clean, items)
    # A model that is not registered at all is a mistake to say at once...
    with pytest.raises(ScoreError, match="model 'car-ae' is not registered"):
        stage(settings).run(RunLimits(timeout=30))
    # ...one registered but not live yet is waited for.
    onnx, threshold = healthy_model()
    record: ModelRecord = registry.register(MODEL, onnx, threshold=threshold, features=FEATURES)
    scorer = stage(settings, all_scores=True)
    thread = run_in_thread(scorer, RunLimits(timeout=120))
    # Assigned its partitions and holding them (paused) until a model is live.
    wait_for(lambda: f"assigned {settings.topics.clean}" in caplog.text)
    wait_for(lambda: "score: waiting for a live version of model car-ae" in caplog.text)
    assert scorer.stats.events == 0 and thread.is_alive()
    group = scorer.group_id
    assert all(
        o < 0 for o in committed_offsets(settings.kafka, group, settings.topics.clean).values()
    )
    registry.promote(MODEL, record.version)
    wait_for(lambda: scorer.stats.events == len(items))
    scorer.request_stop()
    thread.join(30)
    assert scorer.stats.by_model == {record.ref: len(items)}


def test_two_processes_share_the_group(settings: Settings, registry: Registry) -> None:
    onnx, threshold = healthy_model()
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    items = events(3000, seed=4)
    produce_events(settings.kafka, settings.topics.clean, items)
    stats = run_processes(
        score_settings(settings, all_scores=True),
        None,
        RunLimits(until_idle=4, timeout=120),
        processes=2,
    )
    assert stats.events == len(items)
    messages = read_topic(settings.kafka, settings.topics.scores, expected=len(items))
    assert scores_by_key(messages) == Counter((e.car_id, e.seq) for e in items)


def _env(settings: Settings) -> dict[str, str]:
    topics = settings.topics
    return {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAKELESS_TOPICS__CLEAN": topics.clean,
        "LAKELESS_TOPICS__MODELS": topics.models,
        "LAKELESS_TOPICS__ANOMALIES": topics.anomalies,
        "LAKELESS_TOPICS__SCORES": topics.scores,
    }


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
def test_kill_9_and_restart(
    settings: Settings, registry: Registry, guarantee: str, tmp_path: Path
) -> None:
    onnx, threshold = healthy_model()
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    items = events(12_000, seed=8, failure_rate=10)
    group = f"score-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable,
        "-m",
        "lakeless",
        "score",
        "--model",
        MODEL,
        "--group-id",
        group,
        "--guarantee",
        guarantee,
        "--all-scores",
        "--batch-size",
        "200",
        "--batch-ms",
        "50",
        "--instance",
        "kill-test",
    ]
    done = threading.Event()

    def feed() -> None:  # a steady stream, so that the kill lands mid-stream
        for start in range(0, len(items), 500):
            produce_events(settings.kafka, settings.topics.clean, items[start : start + 500])
            time.sleep(0.15)
        done.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(command, env=_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: (
                sum(
                    max(0, o)
                    for o in committed_offsets(
                        settings.kafka, group, settings.topics.clean
                    ).values()
                )
                > 0
            ),
            timeout=90,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert not done.is_set(), "the input was complete before the kill: not mid-stream"
    feeder.join(120)
    second = subprocess.run(
        [*command, "--until-idle", "5", "--timeout", "120"],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr[-3000:]

    counts = scores_by_key(read_topic(settings.kafka, settings.topics.scores, expected=len(items)))
    wanted = Counter((e.car_id, e.seq) for e in items)
    assert set(counts) == set(wanted)  # nothing lost
    if guarantee == "exactly-once":
        assert counts == wanted  # nothing duplicated


def test_sigterm_finishes_commits_and_exits_0(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    onnx, threshold = healthy_model()
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    items = events(2000, seed=9)
    produce_events(settings.kafka, settings.topics.clean, items)
    group = f"score-{uuid.uuid4().hex[:8]}"
    stats_path = tmp_path / "stats.json"
    command = [sys.executable, "-m", "lakeless", "score", "--model", MODEL, "--group-id", group]
    process = subprocess.Popen(
        [*command, "--stats-json", str(stats_path)],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                sum(committed_offsets(settings.kafka, group, settings.topics.clean).values())
                == len(items)
            ),
            timeout=90,
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    report = json.loads(stats_path.read_text())
    assert report["in"] == len(items) and "SIGTERM" in report["stopped_by"]
    assert report["by_model"] == {f"{MODEL}:1": len(items)}
