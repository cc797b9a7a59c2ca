"""Tiered storage to S3: a real broker, a real s3proxy, lakeless' RemoteStorageManager.

The tests that pass on the local tier run on S3 too (``tiered_kafka`` in test_stack.py and
test_dataset.py); these add what only S3 has: objects in the bucket, an outage, remote deletion,
and ``lakeless stack up --tier s3``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from lakeless.config import KafkaSettings
from lakeless.kafka import TopicSpec, create_topics, make_consumer, make_producer
from lakeless.stack import Stack, copy_failures, free_port, list_offsets
from lakeless.testing.waiting import wait_for

pytestmark = pytest.mark.slow

FAST_TIERING = {
    "remote.storage.enable": "true",
    "retention.ms": "-1",
    "local.retention.ms": "1000",
    "segment.bytes": str(1024 * 1024),  # the smallest Kafka 4 allows
    "file.delete.delay.ms": "1000",
}


def tiered_topic(settings: KafkaSettings, **config: str) -> str:
    name = f"s3-{uuid.uuid4().hex[:10]}"
    create_topics(settings, [TopicSpec(name, 1, 1, {**FAST_TIERING, **config})])
    return name


def produce(settings: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings)
    errors: list[object] = []
    for key, value in records:
        producer.produce(topic, value, key, on_delivery=lambda e, _m: e and errors.append(e))
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors


def read_all(settings: KafkaSettings, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = make_consumer(settings, group_id=f"reader-{topic}")
    consumer.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def segment_objects(stack: Stack, topic: str) -> list[Path]:
    """Every object of ``topic``'s partition 0 in the bucket (the filesystem backend's files)."""
    assert stack.s3 is not None
    partition = stack.s3.objects_dir / stack.s3.bucket / f"{topic}-0"
    return sorted(p for p in partition.rglob("*") if p.is_file())


def test_outage_fails_copies_loudly_then_they_are_retried_and_nothing_is_lost(
    s3_stack: Stack,
) -> None:
    assert s3_stack.s3 is not None
    kafka, server_log = s3_stack.kafka_settings, s3_stack.kafka.home / "logs" / "server.log"
    topic = tiered_topic(kafka)
    records = [(b"car-%d" % (i % 50), os.urandom(1000)) for i in range(4000)]  # 4 segments
    failed_before, _ = copy_failures(server_log)

    s3_stack.s3.stop()
    try:
        produce(kafka, topic, records)
        wait_for(
            lambda: copy_failures(server_log)[0] > failed_before,
            60,
            "a failed copy in the broker's log",
        )
        status = s3_stack.status()
        assert status["s3"]["running"] is False
        assert status["s3"]["copy_failures"] > failed_before
        assert topic in status["s3"]["last_copy_failure"]
        wait_for(  # the broker's own line follows, after it tried to clean up
            lambda: "Error occurred while copying log segments" in server_log.read_text(),
            30,
            "the broker's copy error",
        )
        # Nothing copied, so nothing deleted locally; consumers are served from local disk.
        assert list_offsets(kafka.bootstrap_servers, topic, "-4")[0] == 0
        assert read_all(kafka, topic, len(records)) == records
        assert segment_objects(s3_stack, topic) == []
    finally:
        s3_stack.s3.start()

    wait_for(
        lambda: list_offsets(kafka.bootstrap_servers, topic, "-4")[0] > 0,
        120,
        "segments tiered after S3 came back",
        interval=1,
    )
    assert s3_stack.status()["s3"]["running"] is True
    assert read_all(kafka, topic, len(records)) == records  # from offset 0, byte-identical

    objects = segment_objects(s3_stack, topic)
    logs = [p for p in objects if p.suffix == ".log"]
    assert logs, objects
    for log in logs:  # each tiered segment with its indexes (no transactions: no .txnindex)
        stem = log.name.removesuffix(".log")
        siblings = {p.name.removeprefix(stem) for p in objects if p.name.startswith(stem)}
        assert {".index", ".timeindex", ".snapshot", ".leader-epoch-checkpoint"} <= siblings
    # Nothing went to the local tier's folder.
    assert not list((s3_stack.kafka.remote_dir).rglob(f"{topic}*"))


def test_remote_retention_deletes_the_objects(s3_stack: Stack) -> None:
    kafka = s3_stack.kafka_settings
    topic = tiered_topic(kafka, **{"retention.ms": "15000"})
    produce(kafka, topic, [(b"k", os.urandom(1000)) for _ in range(3000)])
    wait_for(
        lambda: any(p.suffix == ".log" for p in segment_objects(s3_stack, topic)),
        120,
        "segments in the bucket",
    )
    # Past retention.ms the broker deletes the remote segments (DeleteObjects) and moves the
    # log start offset.
    wait_for(
        lambda: not any(p.suffix == ".log" for p in segment_objects(s3_stack, topic)),
        120,
        "remote segments deleted",
    )
    assert list_offsets(kafka.bootstrap_servers, topic, "-2")[0] > 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakeless", *args], capture_output=True, text=True, timeout=180
    )


@pytest.mark.mqtt
def test_cli_stack_up_tier_s3(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "stack")
    ports = [str(free_port()) for _ in range(4)]
    up = run_cli(
        "stack", "up", "--data-dir", data_dir, "--kafka-port", ports[0],
        "--controller-port", ports[1], "--mqtt-port", ports[2], "--tier", "s3",
        "--s3-port", ports[3],
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        status = json.loads(run_cli("stack", "status", "--data-dir", data_dir, "--json").stdout)
        assert status["kafka"]["tiered_storage"] is True
        assert status["kafka"]["tier"] == "s3"
        assert status["s3"]["running"] is True
        assert status["s3"]["endpoint"] == f"http://127.0.0.1:{ports[3]}"
        assert isinstance(status["s3"]["pid"], int)

        credentials = Path(data_dir) / "s3" / "credentials"
        assert credentials.stat().st_mode & 0o777 == 0o600
        secret = credentials.read_text().split("aws_secret_access_key = ")[1].strip()
        for shown in (Path(data_dir) / "kafka" / "server.properties", Path(data_dir) / "kafka"):
            files = [shown] if shown.is_file() else list(shown.rglob("*.log"))
            assert all(secret not in f.read_text(errors="replace") for f in files)
        assert secret not in up.stdout + up.stderr

        switched = run_cli("stack", "up", "--data-dir", data_dir, "--tier", "local")
        assert switched.returncode == 1
        assert "would be lost" in switched.stderr
    finally:
        down = run_cli("stack", "down", "--data-dir", data_dir)
    assert down.returncode == 0, down.stderr
    status = json.loads(run_cli("stack", "status", "--data-dir", data_dir, "--json").stdout)
    assert not status["kafka"]["running"] and not status["s3"]["running"]
