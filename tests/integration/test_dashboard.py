"""The dashboard against a real broker: the collector's offsets, lag, anomaly tail and registry
view; the train button's child process (a stand-in trainer); ``lakeless dashboard`` as a process
that stops on SIGTERM.

The page itself, in a browser over a running pipeline, is tested in ``tests/e2e``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import TopicPartition

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.dashboard import DashboardSettings, DashboardState, KafkaCollector, TrainJobs
from lakeless.dashboard._jobs import TrainJob
from lakeless.kafka import make_consumer
from lakeless.registry import Registry, RegistrySettings
from lakeless.score import Anomaly, TopFeature, encode_output
from lakeless.stack import free_port
from lakeless.testing.kafka import end_offsets, produce_records
from lakeless.testing.models import make_test_onnx

MODELS_CONFIG = {"max.message.bytes": str(64 * 1024 * 1024)}


@pytest.fixture
def settings(kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path) -> Settings:
    topics = TopicSettings(
        raw=new_topic(partitions=2),
        clean=new_topic(partitions=2),
        dlq=new_topic(partitions=1),
        anomalies=new_topic(partitions=2),
        models=new_topic(partitions=1, **MODELS_CONFIG),
    )
    return Settings(kafka=kafka, topics=topics, data_dir=tmp_path)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def anomaly(seq: int) -> Anomaly:
    return Anomaly(
        car_id=f"car-{seq % 3}",
        ts=1_700_000_000_000 + seq,
        seq=seq,
        score=3.0,
        threshold=1.0,
        model="car-autoencoder",
        model_version=1,
        top_features=[TopFeature("speed", 1.0, 2.0)],
    )


@pytest.fixture
def collector(settings: Settings) -> Iterator[tuple[KafkaCollector, DashboardState, str]]:
    group = f"dash-{uuid.uuid4().hex[:8]}"
    config = DashboardSettings(preprocess_group=group)
    topics = settings.topics
    state = DashboardState(
        config.stages(),
        {
            "raw": topics.raw,
            "clean": topics.clean,
            "dlq": topics.dlq,
            "anomalies": topics.anomalies,
        },
        rate_window=30,
    )
    # Anomalies written before the collector starts: the last `backfill` per partition show.
    produce_records(
        settings.kafka,
        topics.anomalies,
        [(b"k%d" % i, encode_output(anomaly(i))) for i in range(10)],
    )
    produce_records(settings.kafka, topics.anomalies, [(b"bad", b"not json")])
    running = KafkaCollector(settings, state, interval=0.3, models_interval=0.5, backfill=2).start()
    try:
        yield running, state, group
    finally:
        running.stop()


def test_collector_reads_offsets_lag_anomalies_and_models(
    settings: Settings, collector: tuple[KafkaCollector, DashboardState, str]
) -> None:
    running, state, group = collector
    topics = settings.topics
    wait_for(lambda: len(state.anomalies()) >= 2)
    backfilled = state.anomalies()
    assert len(backfilled) <= 2 * 2  # backfill=2 per partition, the bad record skipped

    produce_records(settings.kafka, topics.raw, [(b"car-1", b"{}")] * 50)
    produce_records(settings.kafka, topics.anomalies, [(b"k", encode_output(anomaly(100)))])
    wait_for(lambda: state.stats()["topics"][topics.raw]["end"] == 50)
    wait_for(lambda: any(a["seq"] == 100 for a in state.anomalies()))
    assert state.anomalies()[0]["seq"] == 100  # newest first
    stats = state.stats()
    assert stats["error"] is None
    assert stats["topics"][topics.raw]["rate"] > 0
    assert stats["stages"][0]["rate"] > 0  # ingest = what reached sensor-raw

    # A consumer group that committed 30 of the 50 records (one key: one partition): lag 20.
    partition = end_offsets(settings.kafka, topics.raw)
    (full,) = [p for p, end in partition.items() if end == 50]
    consumer = make_consumer(settings.kafka, group)
    try:
        consumer.commit(offsets=[TopicPartition(topics.raw, full, 30)], asynchronous=False)
    finally:
        consumer.close()
    preprocess = lambda: state.stats()["stages"][1]  # noqa: E731
    wait_for(lambda: preprocess()["lag"] == 20)
    assert preprocess()["group"] == group

    # The registry view follows registrations and promotions.
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register("car-autoencoder", make_test_onnx(), threshold=1.0, stage="live")
    wait_for(lambda: state.models()["live"] == {"car-autoencoder": 1})
    revision = state.stats()["models_revision"]
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register("car-autoencoder", make_test_onnx(bias=1.0), threshold=2.0)
        registry.promote("car-autoencoder", 2)
    running.refresh_models()
    wait_for(lambda: state.models()["live"] == {"car-autoencoder": 2})
    assert state.stats()["models_revision"] > revision
    assert [m["stage"] for m in state.models()["models"]] == ["live", "archived"]


def test_collector_survives_missing_topics(kafka: KafkaSettings, tmp_path: Path) -> None:
    name = f"missing-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka=kafka,
        topics=TopicSettings(raw=name, clean=name, dlq=name, anomalies=name, models=name),
        data_dir=tmp_path,
    )
    state = DashboardState()
    running = KafkaCollector(settings, state, interval=0.2, models_interval=0.2).start()
    try:
        wait_for(lambda: state.models()["error"] is not None)
        time.sleep(0.5)
        assert all(s["rate"] is None for s in state.stats()["stages"])
    finally:
        running.stop()


# ---- the train button's child process ----------------------------------------------------------


def fake_trainer(tmp_path: Path, body: str) -> str:
    """An executable standing in for ``python``: it gets ``-m lakeless train ...``."""
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_train_job_runs_the_trainer_with_the_dashboard_settings(
    settings: Settings, tmp_path: Path
) -> None:
    python = fake_trainer(
        tmp_path,
        'echo "train: reading $5" >&2\n'
        'echo "topics $LAKELESS_TOPICS" >&2\n'
        "echo 'Epoch 1/2'\n"
        'echo \'{"ref": "car-autoencoder:3", "version": 3, "stage": "live", "rows": 42}\'\n',
    )
    done: list[TrainJob] = []
    jobs = TrainJobs(settings, python=python, on_finish=done.append)
    job = jobs.start(2)
    wait_for(lambda: bool(done))
    assert job.status == "succeeded", job.to_dict()
    assert job.result == {"ref": "car-autoencoder:3", "version": 3, "stage": "live", "rows": 42}
    assert job.output[0] == "train: reading 2m"
    topics = json.loads(job.output[1].removeprefix("topics "))
    assert topics["clean"] == settings.topics.clean
    assert jobs.latest() is job and jobs.get(job.id) is job


def test_a_failing_trainer_and_one_job_at_a_time(settings: Settings, tmp_path: Path) -> None:
    python = fake_trainer(tmp_path, 'sleep 1\necho "error: nothing to train on" >&2\nexit 1\n')
    jobs = TrainJobs(settings, python=python)
    job = jobs.start(5)
    from lakeless.dashboard import JobBusyError

    with pytest.raises(JobBusyError):
        jobs.start(5)
    wait_for(lambda: job.status != "running")
    assert job.status == "failed" and job.returncode == 1
    assert job.error == "exit status 1: error: nothing to train on"


# ---- the command -------------------------------------------------------------------------------


def test_cli_serves_and_stops_on_sigterm(settings: Settings) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAKELESS_TOPICS__ANOMALIES": settings.topics.anomalies,
        "LAKELESS_TOPICS__MODELS": settings.topics.models,
        "LAKELESS_DATA_DIR": str(settings.data_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lakeless", "dashboard", "--port", str(port), "--timeout", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60)
        assert "app.js" in httpx.get(url).text
        with httpx.stream("GET", f"{url}/events", timeout=10) as stream:
            lines = stream.iter_lines()
            assert any(line.startswith("data: ") for line, _ in zip(lines, range(5), strict=False))
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "received SIGTERM" in output
