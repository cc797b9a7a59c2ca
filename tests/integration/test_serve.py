"""The model server against a real broker: hot swap from the registry, refusal, ``score --via``,
and how ``lakeless serve`` stops (idle, SIGTERM)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest
from fastapi.testclient import TestClient

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import car_fleet
from lakeless.fleet import fleet_events
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.registry import Registry, RegistrySettings, StageChange, build_record
from lakeless.registry._log import append, make_registry_producer
from lakeless.schema.outputs import OutputCodec
from lakeless.score import ScoreSettings, ScoreStage
from lakeless.serve import HttpScorerFactory, ServeSettings, create_app
from lakeless.stack import free_port
from lakeless.testing.kafka import produce_clean, read_topic
from lakeless.testing.models import FEATURES, make_test_onnx
from lakeless.testing.waiting import wait_for

SensorEvent = Any  # an event of the car schema's generated type


def decode_score(value: bytes | None) -> Any:
    assert value is not None
    return OutputCodec(car_fleet()).decode_score(value)


MODELS_TOPIC_CONFIG = {"max.message.bytes": str(64 * 1024 * 1024)}
MODEL = "car-ae"


@pytest.fixture
def settings(kafka: KafkaSettings, new_topic: Callable[..., str]) -> Settings:
    topics = TopicSettings(
        clean=new_topic(partitions=3),
        models=new_topic(partitions=1, **MODELS_TOPIC_CONFIG),
        anomalies=new_topic(partitions=3),
        scores=new_topic(partitions=3),
    )
    return Settings(kafka=kafka, topics=topics)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        yield registry


def events(count: int, seed: int = 1, failure_rate: float = 0.0) -> list[SensorEvent]:
    return list(fleet_events(cars=20, seed=seed, count=count, failure_rate=failure_rate, ramp=5))


def matrix(items: Sequence[SensorEvent]) -> np.ndarray:
    return np.array([[getattr(e, f) for f in FEATURES] for e in items], np.float32)


def healthy_model(bias: float = 0.0) -> tuple[bytes, float]:
    """A z-score model of healthy fleet data and a threshold above its healthy scores."""
    data = matrix(events(4000, seed=99)).astype(np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0) + 1e-3
    onnx = make_test_onnx(mean=mean.tolist(), scale=(1 / std).tolist(), bias=bias)
    scores, _ = OnnxScorer(onnx, len(FEATURES)).score(data)
    return onnx, float(scores.max()) * 1.2


def env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAKELESS_TOPICS__MODELS": settings.topics.models,
    }


def start_server(settings: Settings, *options: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    command = [sys.executable, "-m", "lakeless", "serve", "--model", MODEL, "--port", str(port)]
    process = subprocess.Popen(
        [*command, *options],
        env=env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            return bool(httpx.get(f"{url}/health").json()["ready"])
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=60)
    return process, url


def test_follows_the_registry_and_refuses_a_corrupt_model(
    settings: Settings, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(settings, None, ServeSettings(model=MODEL, poll_interval=0.1))
    features = {"features": matrix(events(20)).tolist()}
    with TestClient(app) as client:
        assert client.get("/health").json()["ready"] is False
        assert client.post("/score/batch", json=features).status_code == 503

        onnx1, threshold1 = healthy_model()
        registry.register(MODEL, onnx1, threshold=threshold1, features=FEATURES, stage="live")
        wait_for(lambda: client.get("/model").status_code == 200)
        assert client.get("/model").json()["version"] == 1
        first = client.post("/score/batch", json=features).json()
        assert (first["version"], first["threshold"]) == (1, pytest.approx(threshold1))

        onnx2, threshold2 = healthy_model(bias=0.5)
        registry.register(MODEL, onnx2, threshold=threshold2, features=FEATURES)
        registry.promote(MODEL, 2)
        wait_for(lambda: client.get("/model").json()["version"] == 2)
        second = client.post("/score/batch", json=features).json()
        assert second["version"] == 2
        np.testing.assert_allclose(np.subtract(second["scores"], first["scores"]), 0.5, rtol=1e-5)

        # v3's checksum does not match its bytes; promoted behind the registry's back.
        good = build_record(
            MODEL, 3, make_test_onnx(bias=1.0), threshold=threshold2, features=FEATURES
        )
        producer = make_registry_producer(settings.kafka)
        append(producer, settings.topics.models, msgspec.structs.replace(good, sha256="0" * 64))
        append(
            producer,
            settings.topics.models,
            StageChange(name=MODEL, version=3, stage="live", at=1),
        )
        wait_for(lambda: "refused model car-ae v3" in caplog.text)
        assert client.get("/model").json()["version"] == 2
        assert client.post("/score/batch", json=features).json()["scores"] == second["scores"]
    assert app.state.stats.by_model == {f"{MODEL}:1": 20, f"{MODEL}:2": 40}


@pytest.mark.slow
def test_score_via_the_server_matches_embedded_and_names_the_servers_version(
    settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    # The server follows its own registry topic, where v2 is live; the stage's registry only
    # has v1: the outputs must carry v2 (scores, threshold, version) from the server.
    server_settings = settings.model_copy(
        update={
            "topics": settings.topics.model_copy(
                update={"models": new_topic(partitions=1, **MODELS_TOPIC_CONFIG)}
            )
        }
    )
    onnx1, threshold1 = healthy_model()
    onnx2, threshold2 = healthy_model(bias=0.25)
    with Registry(settings, RegistrySettings(timeout=20)) as stage_registry:
        stage_registry.register(MODEL, onnx1, threshold=threshold1, features=FEATURES, stage="live")
    with Registry(server_settings, RegistrySettings(timeout=20)) as server_registry:
        server_registry.register(
            MODEL, onnx1, threshold=threshold1, features=FEATURES, stage="live"
        )
        server_registry.register(MODEL, onnx2, threshold=threshold2, features=FEATURES)
        server_registry.promote(MODEL, 2)
    items = events(3000, seed=7, failure_rate=30)
    produce_clean(settings.kafka, settings.topics.clean, [(None, e.ts, e) for e in items])

    stats_path = tmp_path / "serve.json"
    server, url = start_server(
        server_settings, "--until-idle", "4", "--timeout", "120", "--stats-json", str(stats_path)
    )
    try:
        config = ScoreSettings(
            group_id=f"via-{uuid.uuid4().hex[:8]}",
            model=MODEL,
            all_scores=True,
            batch_size=500,
            log_interval=0,
        )
        factory = HttpScorerFactory(url)
        stats = ScoreStage(
            settings.model_copy(update={"score": config}), scorer_factory=factory
        ).run(RunLimits(until_idle=3, timeout=120))
        factory.close()
        _, stderr = server.communicate(timeout=60)  # stops by itself once idle
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, stderr[-3000:]
    report = json.loads(stats_path.read_text())
    assert "idle" in report["stopped_by"] and report["in"] == len(items)

    assert stats.events == len(items) and stats.by_model == {f"{MODEL}:2": len(items)}
    scores = {
        (s.key, s.sequence): s
        for s in (
            decode_score(m.value())
            for m in read_topic(settings.kafka, settings.topics.scores, expected=len(items))
        )
    }
    embedded, _ = OnnxScorer(onnx2, len(FEATURES)).score(matrix(items))
    assert len(scores) == len(items)
    for event, want in zip(items, embedded.tolist(), strict=True):
        got = scores[(event.car_id, event.seq)]
        assert got.model_version == 2 and got.model == MODEL
        assert got.score == pytest.approx(want, rel=1e-6, abs=1e-6)
        assert got.anomaly == (want > threshold2)
    assert stats.anomalies == sum(1 for s in embedded if s > threshold2) > 0


def test_sigterm_stops_the_server_with_status_0(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    onnx, threshold = healthy_model()
    registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")
    stats_path = tmp_path / "serve.json"
    server, url = start_server(settings, "--stats-json", str(stats_path))
    try:
        response = httpx.post(f"{url}/score", json=msgspec.to_builtins(events(1)[0]))
        assert response.status_code == 200 and response.json()["version"] == 1
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, stderr[-3000:]
    report = json.loads(stats_path.read_text())
    assert report["requests"] == 1 and "SIGTERM" in report["stopped_by"]
