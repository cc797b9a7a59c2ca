"""What every benchmark suite stands on: throwaway brokers, cleanup, MQTT sessions, Java clients.

A suite that is given no cluster starts its own on free ports (`throwaway_kafka`,
`throwaway_mqtt`) and always stops it; a suite run against an existing cluster deletes what it
created there (`delete_bench_topics`) without letting a failed cleanup hide its results.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import confluent_kafka
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lakeless.config import KafkaSettings, MqttSettings
from lakeless.errors import LakelessError
from lakeless.kafka import make_admin
from lakeless.stack import KafkaBroker, MosquittoBroker, find_jars_dir, free_port, kafka_version

__all__ = [
    "BenchError",
    "delete_bench_topics",
    "java_client_properties",
    "kafka_facts",
    "mqtt_session",
    "throwaway_kafka",
    "throwaway_kafka_unless",
    "throwaway_mqtt",
]

logger = logging.getLogger(__name__)


class BenchError(LakelessError):
    """A benchmark could not run (tool output not understood, broker unreachable, ...)."""


def kafka_facts(
    kafka: KafkaSettings, *, throwaway: bool, label: str = "throwaway"
) -> dict[str, str]:
    """What a report says of its Kafka: the jars' and librdkafka's versions, and the broker.

    The broker is ``label`` when the run started its own, else the bootstrap servers.
    """
    return {
        "kafka": kafka_version(find_jars_dir()),
        "librdkafka": confluent_kafka.libversion()[0],
        "broker": label if throwaway else kafka.bootstrap_servers,
    }


def java_client_properties(kafka: KafkaSettings) -> dict[str, str]:
    """The Java producer's connection properties for ``kafka`` (PLAINTEXT, SASL, TLS)."""
    props = {"bootstrap.servers": kafka.bootstrap_servers}
    props["security.protocol"] = kafka.security_protocol
    if kafka.sasl_mechanism:
        props["sasl.mechanism"] = kafka.sasl_mechanism
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        username, password = (
            value.replace("\\", "\\\\").replace('"', '\\"')
            for value in (kafka.sasl_username or "", password)
        )
        props["sasl.jaas.config"] = (
            f'{module} required username="{username}" password="{password}";'
        )
    if kafka.ssl_ca_location:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = kafka.ssl_ca_location
    return props


def mqtt_session(
    settings: MqttSettings,
    client_id: str,
    *,
    subscribe: str | None,
    expiry_s: int,
    timeout: float = 15.0,
) -> None:
    """Connect as ``client_id`` with a persistent (or, ``expiry_s=0``, expiring) session.

    With ``subscribe``, waits for the SUBACK, so messages published from then on are queued
    for the session. With ``subscribe=None`` and ``expiry_s=0`` it deletes the session.
    """
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.url.startswith("mqtts://"):
        client.tls_set()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT refused %s: %s", client_id, reason)
        elif subscribe is None:
            done.set()
        else:
            c.subscribe(subscribe, qos=1)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        if any(code.is_failure for code in codes):
            failed.append(f"subscription to {subscribe} refused: {codes}")
        done.set()

    failed: list[str] = []
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    try:
        client.connect(
            settings.host, settings.port, clean_start=subscribe is None, properties=properties
        )
    except OSError as exc:
        raise BenchError(f"cannot reach MQTT broker {settings.url}: {exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise BenchError(f"MQTT session {client_id} not ready after {timeout:.0f}s")
        if failed:
            raise BenchError(failed[0])
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def throwaway_kafka(workdir: Path) -> Iterator[KafkaSettings]:
    """A one-broker Kafka on free ports under ``workdir``, stopped on exit."""
    broker = KafkaBroker(workdir, free_port(), free_port(), tiered_storage=False, heap="1g")
    broker.start()
    try:
        yield KafkaSettings(bootstrap_servers=broker.bootstrap)
    finally:
        broker.stop()


@contextlib.contextmanager
def throwaway_kafka_unless(kafka: KafkaSettings | None, workdir: Path) -> Iterator[KafkaSettings]:
    """``kafka`` itself, or (``None``) a `throwaway_kafka` under ``workdir`` for the run."""
    if kafka is not None:
        yield kafka
        return
    with throwaway_kafka(workdir) as settings:
        yield settings


@contextlib.contextmanager
def throwaway_mqtt(workdir: Path) -> Iterator[MqttSettings]:
    """A Mosquitto on a free port under ``workdir``, stopped on exit."""
    broker = MosquittoBroker(workdir, free_port())
    broker.start()
    try:
        yield MqttSettings(url=broker.url)
    finally:
        broker.stop()


def delete_bench_topics(
    kafka: KafkaSettings, topics: Sequence[str], groups: Sequence[str] = ()
) -> None:
    """Delete a run's topics (and consumer groups) from a broker the run did not start.

    Cleanup must never hide the results: failures are logged, never raised.
    """
    admin = make_admin(kafka)  # must outlive its futures
    futures: dict[str, Any] = {}
    try:
        futures |= admin.delete_topics(list(topics), operation_timeout=30)
        if groups:
            futures |= admin.delete_consumer_groups(list(groups), request_timeout=30)
    except Exception as exc:  # cleanup must never hide the results
        logger.warning("could not delete the bench topics: %s", exc)
    for name, future in futures.items():
        try:
            future.result()
        except Exception as exc:
            logger.warning("could not delete %s: %s", name, exc)
