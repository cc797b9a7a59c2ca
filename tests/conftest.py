"""Shared fixtures: a real Kafka broker and a real Mosquitto for the whole test session.

Set ``LAKELESS_TEST_BOOTSTRAP=host:port`` to use an existing broker instead of starting one
(and ``LAKELESS_TEST_MQTT=mqtt://host:port`` for an existing MQTT broker).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakeless.config import KafkaSettings, MqttSettings
from lakeless.kafka import TopicSpec, create_topics
from lakeless.stack import KafkaBroker, MosquittoBroker, Stack, StackSettings, free_port


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaSettings]:
    """Client settings for a real broker: the one in LAKELESS_TEST_BOOTSTRAP, or a fresh one."""
    if bootstrap := os.environ.get("LAKELESS_TEST_BOOTSTRAP"):
        yield KafkaSettings(bootstrap_servers=bootstrap)
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("stack"), free_port(), free_port(), heap="768m")
    broker.start()
    try:
        yield KafkaSettings(bootstrap_servers=broker.bootstrap)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mqtt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttSettings]:
    """Settings for a real Mosquitto: LAKELESS_TEST_MQTT, or a fresh one on a free port."""
    if url := os.environ.get("LAKELESS_TEST_MQTT"):
        yield MqttSettings(url=url)
        return
    broker = MosquittoBroker(tmp_path_factory.mktemp("mqtt"), free_port())
    broker.start()
    try:
        yield MqttSettings(url=broker.url)
    finally:
        broker.stop()


@pytest.fixture
def new_topic(kafka: KafkaSettings) -> Iterator[Callable[..., str]]:
    """Factory: ``new_topic(partitions=1, **config)`` creates a uniquely named topic.

    Kept forever unless ``config`` says otherwise, like a pipeline's data topics: the test broker
    checks retention every second, and records stamped years ago (imported history) would be
    deleted under a test reading them back.
    """

    def make(partitions: int = 1, **config: str) -> str:
        name = f"test-{uuid.uuid4().hex[:10]}"
        create_topics(kafka, [TopicSpec(name, partitions, 1, {"retention.ms": "-1", **config})])
        return name

    yield make


@pytest.fixture(scope="session")
def s3_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A broker that tiers to S3 (a real s3proxy) through lakeless' RemoteStorageManager.

    Its Mosquitto is not started. Tests may stop and start ``stack.s3`` (the outage test does).
    """
    settings = StackSettings(
        data_dir=tmp_path_factory.mktemp("s3-stack"),
        kafka_port=free_port(),
        controller_port=free_port(),
        mqtt_port=free_port(),
        s3_port=free_port(),
        tier="s3",
        kafka_heap="512m",
    )
    stack = Stack(settings)
    assert stack.s3 is not None
    stack.kafka.extra_config.update(stack.s3.broker_config())
    stack.s3.start()
    try:
        stack.kafka.start()
        yield stack
    finally:
        stack.kafka.stop()
        stack.s3.stop()


@pytest.fixture(params=["local", "s3"])
def tiered_kafka(request: pytest.FixtureRequest) -> KafkaSettings:
    """The same test on each remote tier: LocalTieredStorage (`kafka`), then S3 (`s3_stack`)."""
    if request.param == "local":
        settings: KafkaSettings = request.getfixturevalue("kafka")
        return settings
    stack: Stack = request.getfixturevalue("s3_stack")
    return stack.kafka_settings


@pytest.fixture
def new_tiered_topic(tiered_kafka: KafkaSettings) -> Callable[..., str]:
    """Like `new_topic`, on the broker of `tiered_kafka`."""

    def make(partitions: int = 1, **config: str) -> str:
        name = f"test-{uuid.uuid4().hex[:10]}"
        create_topics(tiered_kafka, [TopicSpec(name, partitions, 1, dict(config))])
        return name

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real brokers.
    for item in items:
        if Path(item.fspath).parts[-2] == "integration":
            item.add_marker(pytest.mark.kafka)
