"""The dashboard against a real broker: the collector's offsets, lag, anomaly tails and registry
views for two pipelines at once, a pipeline registered while it runs; the train button's child
process (a stand-in trainer); ``lakeless dashboard --pipeline`` as a process that stops on
SIGTERM.

The page itself, in a browser over a running pipeline, is tested in ``tests/e2e``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import TopicPartition

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.dashboard import KafkaCollector, PipelineViews, TrainJobs
from lakeless.dashboard._jobs import TrainJob
from lakeless.examples import car_fleet, example_schema
from lakeless.kafka import make_consumer
from lakeless.pipeline import Pipeline, PipelineTopics, SchemaRegistry
from lakeless.registry import Registry, RegistrySettings
from lakeless.schema.outputs import OutputCodec
from lakeless.stack import free_port
from lakeless.testing.kafka import end_offsets, produce_records
from lakeless.testing.models import make_test_onnx
from lakeless.testing.readings import perfect_anomalies, readings
from lakeless.testing.waiting import wait_for

MODELS_CONFIG = {"max.message.bytes": str(64 * 1024 * 1024)}
PUMPS = example_schema("pumps")


def topics_of(new_topic: Callable[..., str]) -> PipelineTopics:
    return PipelineTopics(
        raw=new_topic(partitions=2),
        clean=new_topic(partitions=2),
        dlq=new_topic(partitions=1),
        anomalies=new_topic(partitions=2),
        scores=new_topic(partitions=1),
    )


@pytest.fixture
def settings(kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path) -> Settings:
    fleet = topics_of(new_topic)
    topics = TopicSettings(
        raw=fleet.raw,
        clean=fleet.clean,
        dlq=fleet.dlq,
        anomalies=fleet.anomalies,
        scores=fleet.scores,
        models=new_topic(partitions=1, **MODELS_CONFIG),
        schemas=new_topic(partitions=1),
    )
    return Settings(
        kafka=kafka,
        topics=topics,
        data_dir=tmp_path,
        preprocess={"group_id": f"dash-{uuid.uuid4().hex[:8]}"},
        dashboard={
            "interval": 0.3,
            "models_interval": 0.5,
            "pipelines_interval": 0.5,
            "backfill": 2,
            "rate_window": 30,
        },
    )


def pump_anomalies(count: int) -> list[tuple[bytes, bytes]]:
    events = readings(PUMPS, entities=3, seconds=count)
    codec = OutputCodec(PUMPS)
    return [
        (a.key.encode(), codec.encode(a))
        for a in perfect_anomalies(PUMPS, events, model="pumps-autoencoder", labelled=False)
    ][:count]


def car_anomalies(count: int, first: int = 0) -> list[tuple[bytes, bytes]]:
    schema = car_fleet()
    events = readings(schema, entities=1, seconds=first + count)[first:]
    codec = OutputCodec(schema)
    return [
        (a.key.encode(), codec.encode(a))
        for a in perfect_anomalies(schema, events, model="car-autoencoder", labelled=False)
    ]


@pytest.fixture
def running(
    settings: Settings, new_topic: Callable[..., str]
) -> Iterator[tuple[KafkaCollector, PipelineViews, Pipeline]]:
    """The collector over the car fleet and a pumps pipeline (not registered)."""
    pumps = Pipeline.new(f"pumps-{uuid.uuid4().hex[:6]}", PUMPS, topics=topics_of(new_topic))
    views = PipelineViews(settings, [Pipeline.builtin(settings), pumps])
    # Anomalies written before the collector starts: the last `backfill` per partition show.
    produce_records(settings.kafka, settings.topics.anomalies, car_anomalies(10))
    produce_records(settings.kafka, settings.topics.anomalies, [(b"bad", b"not json")])
    produce_records(settings.kafka, pumps.topics.anomalies, pump_anomalies(6))
    collector = KafkaCollector(settings, views).start()
    try:
        yield collector, views, pumps
    finally:
        collector.stop()


def test_collector_follows_two_pipelines(
    settings: Settings, running: tuple[KafkaCollector, PipelineViews, Pipeline]
) -> None:
    collector, views, pumps = running
    fleet_view, pumps_view = views.get("car-fleet"), views.get(pumps.name)
    assert fleet_view is not None and pumps_view is not None
    fleet, plant = fleet_view.state, pumps_view.state
    wait_for(lambda: len(fleet.anomalies()) >= 2 and len(plant.anomalies()) >= 2)
    assert len(fleet.anomalies()) <= 2 * 2  # backfill=2 per partition, the bad record skipped
    assert all("car_id" in a for a in fleet.anomalies())
    assert all("pump_id" in a and "seq" not in a for a in plant.anomalies())  # its own schema

    produce_records(settings.kafka, settings.topics.raw, [(b"car-1", b"{}")] * 50)
    produce_records(settings.kafka, pumps.topics.raw, [(b"pump-1", b"{}")] * 20)
    produce_records(settings.kafka, settings.topics.anomalies, car_anomalies(1, first=100))
    wait_for(lambda: fleet.stats()["topics"][settings.topics.raw]["end"] == 50)
    wait_for(lambda: plant.stats()["topics"][pumps.topics.raw]["end"] == 20)
    wait_for(lambda: any(a["seq"] == 100 for a in fleet.anomalies()))
    assert fleet.anomalies()[0]["seq"] == 100  # newest first
    stats = fleet.stats()
    assert stats["error"] is None
    assert stats["topics"][settings.topics.raw]["rate"] > 0
    assert stats["stages"][0]["rate"] > 0  # ingest = what reached the raw topic
    assert pumps.topics.raw not in stats["topics"]

    # A group that committed 30 of the 50 records (one key: one partition): lag 20. The
    # preprocess group of the car fleet is the one its settings name.
    group = settings.preprocess.group_id
    assert group is not None
    partition = end_offsets(settings.kafka, settings.topics.raw)
    (full,) = [p for p, end in partition.items() if end == 50]
    consumer = make_consumer(settings.kafka, group)
    try:
        consumer.commit(offsets=[TopicPartition(settings.topics.raw, full, 30)], asynchronous=False)
    finally:
        consumer.close()
    preprocess = lambda: fleet.stats()["stages"][1]  # noqa: E731
    wait_for(lambda: preprocess()["lag"] == 20)
    assert preprocess()["group"] == group
    pumps_group = plant.stats()["stages"][1]["group"]
    assert pumps_group == f"lakeless-preprocess.{pumps.name}" and plant.stats()["error"] is None

    # Each pipeline's registry view shows its own models.
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register(
            "car-autoencoder",
            make_test_onnx(),
            threshold=1.0,
            stage="live",
            features=car_fleet().feature_names,
        )
        registry.register(
            pumps.model,
            make_test_onnx(len(PUMPS.features)),
            threshold=1.0,
            stage="live",
            features=PUMPS.feature_names,
            pipeline=pumps.name,
        )
    wait_for(lambda: fleet.models()["live"] == {"car-autoencoder": 1})
    wait_for(lambda: plant.models()["live"] == {pumps.model: 1})
    assert [m["name"] for m in plant.models()["models"]] == [pumps.model]
    revision = fleet.stats()["models_revision"]
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register(
            "car-autoencoder",
            make_test_onnx(bias=1.0),
            threshold=2.0,
            features=car_fleet().feature_names,
        )
        registry.promote("car-autoencoder", 2)
    collector.refresh_models()
    wait_for(lambda: fleet.models()["live"] == {"car-autoencoder": 2})
    assert fleet.stats()["models_revision"] > revision
    assert [m["stage"] for m in fleet.models()["models"]] == ["live", "archived"]
    assert plant.models()["live"] == {pumps.model: 1}


def test_a_pipeline_registered_later_appears(
    settings: Settings,
    new_topic: Callable[..., str],
    running: tuple[KafkaCollector, PipelineViews, Pipeline],
) -> None:
    _collector, views, _pumps = running
    late = Pipeline.new(f"late-{uuid.uuid4().hex[:6]}", PUMPS, topics=topics_of(new_topic))
    produce_records(settings.kafka, late.topics.anomalies, pump_anomalies(3))
    SchemaRegistry(settings).create(late)
    wait_for(lambda: views.get(late.name) is not None)
    view = views.get(late.name)
    assert view is not None and view.layout()["registered"]
    wait_for(lambda: len(view.state.anomalies()) >= 2)  # its anomaly topic is tailed too
    assert views.all()[0].name == "car-fleet"  # the opening pipeline stays first


def test_collector_survives_missing_topics(kafka: KafkaSettings, tmp_path: Path) -> None:
    name = f"missing-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka=kafka,
        topics=TopicSettings(
            raw=name, clean=name, dlq=name, anomalies=name, models=name, schemas=name
        ),
        data_dir=tmp_path,
        dashboard={"interval": 0.2, "models_interval": 0.2, "pipelines_interval": 0.2},
    )
    views = PipelineViews(settings, [Pipeline.builtin(settings)])
    collector = KafkaCollector(settings, views).start()
    view = views.get()
    assert view is not None
    try:
        wait_for(lambda: view.state.models()["error"] is not None)
        samples = view.state.stats()["uptime_s"]
        wait_for(lambda: view.state.stats()["uptime_s"] > samples + 0.5)  # still sampling
        assert all(s["rate"] is None for s in view.state.stats()["stages"])
        assert collector._thread is not None and collector._thread.is_alive()
    finally:
        collector.stop()


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
        'echo "train: $*" >&2\n'
        'echo "topics $LAKELESS_TOPICS" >&2\n'
        "echo 'Epoch 1/2'\n"
        'echo \'{"ref": "pumps-autoencoder:3", "version": 3, "stage": "live", "rows": 42}\'\n',
    )
    done: list[TrainJob] = []
    jobs = TrainJobs(settings, python=python, on_finish=done.append)
    job = jobs.start(2, "pumps", "pumps-autoencoder")
    wait_for(lambda: bool(done))
    assert job.status == "succeeded", job.to_dict()
    assert job.result == {"ref": "pumps-autoencoder:3", "version": 3, "stage": "live", "rows": 42}
    assert job.output[0] == (
        "train: -m lakeless train --pipeline pumps --name pumps-autoencoder --last 2m "
        "--promote --json"
    )
    topics = json.loads(job.output[1].removeprefix("topics "))
    assert topics["clean"] == settings.topics.clean
    assert jobs.latest() is job and jobs.get(job.id) is job
    assert job.to_dict()["pipeline"] == "pumps"


def test_a_failing_trainer_and_one_job_at_a_time(settings: Settings, tmp_path: Path) -> None:
    python = fake_trainer(tmp_path, 'sleep 1\necho "error: nothing to train on" >&2\nexit 1\n')
    jobs = TrainJobs(settings, python=python)
    job = jobs.start(5, "car-fleet", "car-autoencoder")
    from lakeless.dashboard import JobBusyError

    with pytest.raises(JobBusyError):
        jobs.start(5, "pumps", "pumps-autoencoder")
    wait_for(lambda: job.status != "running")
    assert job.status == "failed" and job.returncode == 1
    assert job.error == "exit status 1: error: nothing to train on"


def test_cancel_stops_the_trainer_and_its_children(settings: Settings, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    python = fake_trainer(tmp_path, f"sleep 300 &\necho $! > {pids}\nwait\n")
    jobs = TrainJobs(settings, python=python)
    job = jobs.start(5, "car-fleet", "car-autoencoder")
    wait_for(lambda: pids.exists() and pids.read_text().strip() != "")
    grandchild = int(pids.read_text())
    jobs.cancel_all(timeout=5)
    wait_for(lambda: job.finished_at is not None)
    assert job.status == "cancelled"
    wait_for(lambda: not _running(grandchild), timeout=10)  # the whole group went


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# ---- the command -------------------------------------------------------------------------------


def test_cli_serves_a_registered_pipeline_and_stops_on_sigterm(
    settings: Settings, new_topic: Callable[..., str]
) -> None:
    pumps = Pipeline.new(f"pumps-{uuid.uuid4().hex[:6]}", PUMPS, topics=topics_of(new_topic))
    SchemaRegistry(settings).create(pumps)
    port = free_port()
    env = {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAKELESS_TOPICS__ANOMALIES": settings.topics.anomalies,
        "LAKELESS_TOPICS__MODELS": settings.topics.models,
        "LAKELESS_TOPICS__SCHEMAS": settings.topics.schemas,
        "LAKELESS_DATA_DIR": str(settings.data_dir),
    }
    command = [sys.executable, "-m", "lakeless", "dashboard", "--port", str(port)]
    command += ["--pipeline", pumps.name, "--timeout", "120"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
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
        config = httpx.get(f"{url}/api/config", timeout=5).json()
        assert config["pipeline"] == pumps.name and config["model"] == pumps.model
        assert config["topics"]["raw"] == pumps.topics.raw
        # The built-in car fleet is there too, a selector away.
        wait_for(
            lambda: (
                "car-fleet"
                in [p["pipeline"] for p in httpx.get(f"{url}/api/pipelines").json()["pipelines"]]
            )
        )
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
