"""The foundation against a real broker: round trip, restart, tiered storage, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from lakeless.config import KafkaSettings
from lakeless.kafka import make_consumer, make_producer
from lakeless.stack import KafkaBroker, free_port, list_offsets, run_kafka_tool
from lakeless.testing.waiting import wait_for


def produce(settings: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings)
    errors: list[object] = []
    for key, value in records:
        while True:
            try:
                producer.produce(
                    topic, value, key, on_delivery=lambda err, _msg: err and errors.append(err)
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors


def read_all(
    settings: KafkaSettings, topic: str, partitions: int, expected: int, timeout: float = 60
) -> list[tuple[bytes, bytes]]:
    """Every record of ``topic`` from offset 0, by assignment (no group coordination)."""
    consumer: Consumer = make_consumer(settings, group_id=f"reader-{topic}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def test_produce_consume_round_trip(kafka: KafkaSettings, new_topic: Callable[..., str]) -> None:
    topic = new_topic(partitions=3)
    records = [(f"car-{i % 17}".encode(), f"event-{i}".encode()) for i in range(3000)]
    produce(kafka, topic, records)
    got = read_all(kafka, topic, 3, len(records))
    assert sorted(got) == sorted(records)


def test_restart_keeps_data(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path, free_port(), free_port(), heap="512m")
    broker.start()
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap)
    try:
        from lakeless.kafka import TopicSpec, create_topics

        create_topics(settings, [TopicSpec("durable", 2, 1)])
        records = [(b"k%d" % i, b"v%d" % i) for i in range(500)]
        produce(settings, "durable", records)
        assert broker.stop()
        assert broker.pid() is None
        broker.start()
        assert sorted(read_all(settings, "durable", 2, len(records))) == sorted(records)
    finally:
        broker.stop()


@pytest.mark.slow
def test_tiered_storage_serves_segments_deleted_locally(
    tiered_kafka: KafkaSettings, new_tiered_topic: Callable[..., str]
) -> None:
    kafka = tiered_kafka  # each remote tier in turn
    topic = new_tiered_topic(
        partitions=1,
        **{
            "remote.storage.enable": "true",
            "retention.ms": "-1",
            "local.retention.ms": "1000",
            "segment.bytes": str(1024 * 1024),  # the smallest Kafka 4 allows
            "file.delete.delay.ms": "1000",
        },
    )
    # ~6 MiB of incompressible values: at least five rolled segments to tier.
    records = [(b"car-%d" % (i % 50), os.urandom(1000)) for i in range(6000)]
    produce(kafka, topic, records)

    wait_for(
        lambda: list_offsets(kafka.bootstrap_servers, topic, "-4")[0] > 0,
        120,
        "a segment to leave the broker's disk",
        interval=2,  # each poll starts a JVM (GetOffsetShell): leave the cores to the broker
    )

    got = read_all(kafka, topic, 1, len(records))
    assert got == records  # every record back, in order, byte-identical


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakeless", *args], capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
@pytest.mark.mqtt
def test_cli_stack_up_status_down(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "stack")
    ports = [str(free_port()) for _ in range(3)]
    up = run_cli(
        "stack", "up", "--data-dir", data_dir, "--kafka-port", ports[0],
        "--controller-port", ports[1], "--mqtt-port", ports[2],
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        status = json.loads(run_cli("stack", "status", "--data-dir", data_dir, "--json").stdout)
        assert status["kafka"]["running"] and status["mqtt"]["running"]
        assert status["kafka"]["tiered_storage"] is True
        assert status["kafka"]["bootstrap"] == f"127.0.0.1:{ports[0]}"
        assert status["kafka"]["version"].startswith("4.")
        assert status["mqtt"]["url"] == f"mqtt://127.0.0.1:{ports[2]}"

        bootstrap = f"127.0.0.1:{ports[0]}"
        created = run_cli("topics", "create", "--bootstrap", bootstrap)
        assert created.returncode == 0, created.stderr
        listed = run_kafka_tool(
            "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--list"
        ).split()
        assert {"sensor-raw", "sensor-clean", "sensor-dlq", "lakeless.models"} <= set(listed)

        taken = run_cli("stack", "up", "--data-dir", str(tmp_path / "other"),
                        "--kafka-port", ports[0], "--mqtt-port", str(free_port()))  # fmt: skip
        assert taken.returncode == 1
        assert f"port {ports[0]}" in taken.stderr and "taken" in taken.stderr
    finally:
        down = run_cli("stack", "down", "--data-dir", data_dir)
    assert down.returncode == 0, down.stderr
    status = json.loads(run_cli("stack", "status", "--data-dir", data_dir, "--json").stdout)
    assert not status["kafka"]["running"] and not status["mqtt"]["running"]
