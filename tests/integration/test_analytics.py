"""The analytics cluster: ``stack up --analytics``, MirrorMaker 2, training on the replica.

One stack in a temporary data dir (free ports): the primary cluster, Mosquitto, the analytics
cluster and MirrorMaker 2, started by the CLI. The clean readings are written to the primary
exactly-once, in transactions (as a Kafka Streams or Flink job writes): every commit leaves a
marker that takes an offset on the primary and is not replicated, so the same record has
another offset on analytics. A model is trained on the analytics replica, registered on the
primary, and a primary scorer scores with it; its lineage names the analytics cluster and
holds analytics' offsets, which the primary refuses to replay.

The replication lag (the produce call on the primary to a consumer on analytics) is measured over a
few hundred raw readings and reported (``record_property`` and the ``-s`` output), never
asserted: performance belongs to benchmarks.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from lakeless.config import KafkaSettings, Settings
from lakeless.dataset import DatasetError, KafkaDataset, ResolvedWindow
from lakeless.errors import KafkaError
from lakeless.examples import car_fleet
from lakeless.fleet import fleet_events
from lakeless.kafka import create_topics, make_consumer, make_producer, pipeline_topics
from lakeless.lifecycle import RunLimits
from lakeless.registry import Registry
from lakeless.schema import CleanCodec
from lakeless.score import ScoreSettings, ScoreStage
from lakeless.stack import Stack, free_port
from lakeless.testing.events import encode_event
from lakeless.testing.kafka import committed_offsets, end_offsets
from lakeless.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

CARS = 20
RECORDS = 6_000
#: Records per transaction of the exactly-once writer (each commit: one marker per partition).
TRANSACTION = 1_000
LAG_RECORDS = 300
LAG_RATE = 100.0  # records per second
MODEL = "analytics-ae"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakeless", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("analytics-stack")
    ports = [str(free_port()) for _ in range(5)]
    up = run_cli(
        "stack", "up", "--data-dir", str(data_dir), "--kafka-port", ports[0],
        "--controller-port", ports[1], "--mqtt-port", ports[2], "--analytics",
        "--analytics-port", ports[3], "--analytics-controller-port", ports[4],
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        assert f"Analytics cluster on 127.0.0.1:{ports[3]}" in " ".join(up.stdout.split())
        yield Stack.from_data_dir(data_dir)
    finally:
        down = run_cli("stack", "down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stderr
        assert "mirror: stopped" in down.stdout and "analytics: stopped" in down.stdout


@pytest.fixture(scope="module")
def status(stack: Stack) -> dict[str, Any]:
    done = run_cli("stack", "status", "--data-dir", str(stack.settings.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def total(offsets: dict[int, int]) -> int:
    return sum(offsets.values())


def ends_or_none(settings: KafkaSettings, topic: str) -> dict[int, int]:
    """End offsets; ``{}`` while the topic (a replica MirrorMaker just made) has no leaders."""
    try:
        return end_offsets(settings, topic)
    except KafkaError:
        return {}


def write_clean_exactly_once(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Fleet readings into ``topic`` in transactions of `TRANSACTION` records."""
    codec = CleanCodec(car_fleet())
    events = list(fleet_events(cars=CARS, seed=5, count=RECORDS, failure_rate=3.0))
    producer = make_producer(kafka, transactional_id=f"writer-{uuid.uuid4().hex[:8]}")
    producer.init_transactions(30)
    for start in range(0, len(events), TRANSACTION):
        producer.begin_transaction()
        for event in events[start : start + TRANSACTION]:
            producer.produce(topic, codec.encode(event), event.car_id.encode(), timestamp=event.ts)
        producer.commit_transaction(60)
    return events


def test_status_shows_both_clusters_and_the_mirror(stack: Stack, status: dict[str, Any]) -> None:
    kafka, analytics, mirror = status["kafka"], status["analytics"], status["mirror"]
    assert kafka["running"] and analytics["running"] and mirror["running"]
    assert analytics["bootstrap"] == stack.analytics.bootstrap != kafka["bootstrap"]
    assert analytics["cluster_id"] and analytics["cluster_id"] != kafka["cluster_id"]
    assert [b["port"] for b in analytics["brokers"]] == [stack.settings.analytics_kafka_port]
    assert mirror["pid"] and mirror["replication_policy"] == "identity"
    assert (mirror["source"], mirror["target"]) == (kafka["bootstrap"], analytics["bootstrap"])
    assert {"sensor-raw", "sensor-clean", "lakeless.models", "lakeless.schemas"} <= set(
        mirror["topics"]
    )
    assert Path(mirror["log"]).read_text().strip()  # MirrorMaker logs to its file

    again = run_cli("stack", "up", "--data-dir", str(stack.settings.data_dir))
    assert again.returncode == 0, again.stderr
    assert stack.mirror.pid() == mirror["pid"]  # idempotent: the running mirror is kept


def test_train_on_the_replica_register_on_the_primary_score_there(
    stack: Stack, status: dict[str, Any], tmp_path: Path
) -> None:
    primary, analytics = stack.kafka_settings, stack.analytics.client_settings()
    create_topics(primary, pipeline_topics(stack.topics))
    topics = stack.topics
    events = write_clean_exactly_once(primary, topics.clean)
    # The replica is complete when analytics holds every record (at least once).
    wait_for(
        lambda: total(ends_or_none(analytics, topics.clean)) >= RECORDS,
        timeout=90,
        what=f"{RECORDS} records of {topics.clean} on analytics",
    )
    on_primary = end_offsets(primary, topics.clean)
    on_analytics = end_offsets(analytics, topics.clean)
    # Commit markers take offsets on the primary only: the clusters number records differently.
    assert total(on_primary) > total(on_analytics) >= RECORDS

    trained = run_cli(
        "train", "--epochs", "2", "--name", MODEL, "--promote", "--json",
        env={
            **stack.analytics_env(),
            "LAKELESS_DATA_DIR": str(tmp_path),
        },
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert (summary["name"], summary["version"], summary["stage"]) == (MODEL, 1, "live")

    with Registry(Settings(kafka=primary)) as registry:  # registered on the PRIMARY
        record = registry.get(MODEL, 1)
    lineage = record.lineage
    assert lineage["cluster_id"] == status["analytics"]["cluster_id"]
    assert lineage["bootstrap_servers"] == stack.analytics.bootstrap
    assert {int(p): end for p, (_, end) in lineage["partitions"].items()} == on_analytics
    assert lineage["num_records"] == total(on_analytics)

    # The lineage's offsets are analytics': the primary refuses to replay them.
    with pytest.raises(DatasetError, match="offsets differ between clusters"):
        KafkaDataset(primary, topics.clean, ResolvedWindow.from_dict(lineage))

    # The primary's scorer follows the primary's registry and scores with the new model.
    group = f"score-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka=primary, score=ScoreSettings(group_id=group, model=MODEL, log_interval=0)
    )
    stats = ScoreStage(settings).run(RunLimits(until_idle=3, timeout=120))
    assert stats.events == len(events)
    assert stats.by_model == {f"{MODEL}:1": len(events)}

    # The registry record comes back to analytics through the mirror (read-only there).
    wait_for(
        lambda: (
            total(end_offsets(analytics, topics.models))
            >= total(end_offsets(primary, topics.models))
        ),
        timeout=90,
        what="the registry on analytics",
    )
    # The scorer's group is not active on analytics: MirrorMaker syncs its offsets there,
    # translated (approximately: at or before the true position) to analytics' numbering.
    wait_for(
        lambda: all(o >= 0 for o in committed_offsets(analytics, group, topics.clean).values()),
        timeout=90,
        what=f"group {group} synced to analytics",
    )
    synced = committed_offsets(analytics, group, topics.clean)
    assert synced.keys() == on_analytics.keys()
    assert all(0 <= synced[p] <= on_analytics[p] for p in synced)


def test_replication_lag(stack: Stack, record_property: Callable[[str, object], None]) -> None:
    """Produce on the primary -> consumed on analytics, per record (reported, not asserted)."""
    primary, analytics = stack.kafka_settings, stack.analytics.client_settings()
    topic = stack.topics.raw
    create_topics(primary, pipeline_topics(stack.topics))
    wait_for(lambda: bool(ends_or_none(analytics, topic)), timeout=90, what=f"{topic} on analytics")
    ends = end_offsets(analytics, topic)
    consumer = make_consumer(analytics, group_id=f"lag-{uuid.uuid4().hex[:8]}", fetch_wait_max_ms=5)
    consumer.assign([TopicPartition(topic, p, end) for p, end in ends.items()])
    arrived: dict[bytes, float] = {}

    def consume() -> None:
        deadline = time.monotonic() + 120
        while len(arrived) < LAG_RECORDS and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.1):
                if message.error() is None and message.key() not in arrived:
                    arrived[message.key()] = time.time()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = make_producer(primary, linger_ms=0)
    readings = list(fleet_events(cars=CARS, seed=9, count=LAG_RECORDS))
    failed: list[Any] = []
    sent: dict[bytes, float] = {}
    started = time.monotonic()
    for i, reading in enumerate(readings):
        key = f"lag-{i}".encode()
        sent[key] = time.time()
        producer.produce(
            topic, encode_event(reading), key, on_delivery=lambda e, _m: e and failed.append(e)
        )
        producer.poll(0)
        # Paced like a fleet, not a bulk load: the lag of each record, not of a backlog.
        time.sleep(max(0.0, started + (i + 1) / LAG_RATE - time.monotonic()))
    assert producer.flush(30) == 0
    reader.join(150)
    consumer.close()
    assert len(arrived) == LAG_RECORDS, f"{len(arrived)} of {LAG_RECORDS} arrived on analytics"
    assert not failed, failed
    lags = sorted((arrived[key] - sent[key]) * 1000 for key in sent)
    deciles = statistics.quantiles(lags, n=10)
    figures = {
        "records": len(lags),
        "rate_per_s": LAG_RATE,
        "median_ms": round(statistics.median(lags), 1),
        "p10_ms": round(deciles[0], 1),
        "p90_ms": round(deciles[-1], 1),
        "min_ms": round(lags[0], 1),
        "max_ms": round(lags[-1], 1),
    }
    record_property("replication_lag", figures)
    print(f"\nreplication lag primary -> analytics: {json.dumps(figures)}")
