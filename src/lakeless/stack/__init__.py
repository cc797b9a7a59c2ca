"""The embedded infrastructure: real Apache Kafka (KRaft, tiered storage) and Mosquitto.

One Kafka node by default; ``brokers=3`` runs a three-node cluster (3-voter controller quorum,
replication 3, min ISR 2); ``secure=True`` puts SASL_SSL/SCRAM, ACLs per stage and TLS on
Mosquitto in front (see `lakeless.stack._security`).

With ``tier="s3"`` old segments go to an S3 bucket (s3proxy on loopback, `S3Proxy`) through
lakeless' own RemoteStorageManager instead of a local folder.

With ``analytics=True`` a second, single-node cluster (``<data_dir>/analytics``, its own ports)
receives the pipelines' topics, the model registry and the schema registry from the primary
through MirrorMaker 2 (`MirrorMaker`, topic names kept): training and reports run there, and the
models they make are registered on the primary, where the scorers follow them.

Example:
    >>> from pathlib import Path
    >>> stack = Stack(StackSettings(data_dir=Path("/tmp/lakeless-doc")))
    >>> stack.kafka.bootstrap
    '127.0.0.1:9092'
    >>> Stack(StackSettings(data_dir=Path("/tmp/lakeless-doc"), brokers=3)).kafka.bootstrap
    '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094'
    >>> Stack(StackSettings(data_dir=Path("/tmp/lakeless-doc"), analytics=True)).analytics.bootstrap
    '127.0.0.1:9192'
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakeless.config import KafkaSettings, Settings, TopicSettings, describe_errors
from lakeless.errors import LakelessError, StackError
from lakeless.kafka import make_admin
from lakeless.stack._kafka import (
    KafkaBroker,
    KafkaCluster,
    KafkaNode,
    find_jars_dir,
    kafka_version,
    list_offsets,
    run_kafka_tool,
)
from lakeless.stack._mirror import MirrorMaker, mirrored_topics
from lakeless.stack._mosquitto import MosquittoBroker
from lakeless.stack._process import free_port, free_ports
from lakeless.stack._s3 import S3Proxy, copy_failures
from lakeless.stack._security import ADMIN, STAGE_ACCESS, STAGES, StackSecurity, StageAccess

__all__ = [
    "ADMIN",
    "STAGES",
    "STAGE_ACCESS",
    "KafkaBroker",
    "KafkaCluster",
    "KafkaNode",
    "MirrorMaker",
    "MosquittoBroker",
    "S3Proxy",
    "Stack",
    "StackSecurity",
    "StackSettings",
    "StageAccess",
    "copy_failures",
    "find_jars_dir",
    "free_port",
    "free_ports",
    "kafka_version",
    "list_offsets",
    "run_kafka_tool",
]

logger = logging.getLogger(__name__)

_STATE_FILE = "stack.json"
#: Settings a formatted data dir cannot change (its storage and users were made for them).
_FIXED = ("brokers", "secure")


class StackSettings(BaseModel):
    """Where the stack keeps its data, which loopback ports it listens on, how many brokers.

    ``controller_port`` defaults to the port after the last client port: ``kafka_port + 1``
    for one node (9093), ``kafka_port + brokers`` for more. The analytics cluster (one node)
    listens on ``analytics_port`` (``kafka_port + 100``: 9192) and its controller on
    ``analytics_controller_port`` (the port after it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path(".lakeless")
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int | None = Field(default=None, ge=1, le=65535)
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    brokers: int = Field(default=1, ge=1, le=9)
    secure: bool = False
    tiered_storage: bool = True
    kafka_heap: str = "1g"
    #: Where tiered segments go: a local folder (Kafka's LocalTieredStorage) or S3 (s3proxy).
    tier: Literal["local", "s3"] = "local"
    s3_port: int = Field(default=9000, ge=1, le=65535)
    s3_bucket: str = Field(default="lakeless", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    #: A second cluster that MirrorMaker 2 replicates the primary's topics into.
    analytics: bool = False
    analytics_port: int | None = Field(default=None, ge=1, le=65535)
    analytics_controller_port: int | None = Field(default=None, ge=1, le=65535)
    mirror_heap: str = "512m"

    @model_validator(mode="after")
    def _s3_needs_tiering(self) -> StackSettings:
        if self.tier == "s3" and not self.tiered_storage:
            raise ValueError("tier 's3' needs tiered storage on")
        if self.analytics and self.secure:
            raise ValueError("an analytics cluster is not available on a secured stack yet")
        if (
            self.analytics
            and max(self.analytics_kafka_port, self.analytics_first_controller_port) > 65535
        ):
            raise ValueError("the analytics ports go past 65535: set --analytics-port")
        return self

    @property
    def analytics_kafka_port(self) -> int:
        """The analytics cluster's client port."""
        return self.analytics_port if self.analytics_port is not None else self.kafka_port + 100

    @property
    def analytics_first_controller_port(self) -> int:
        """The analytics cluster's controller port."""
        if self.analytics_controller_port is not None:
            return self.analytics_controller_port
        return self.analytics_kafka_port + 1

    @property
    def first_controller_port(self) -> int:
        """Node 1's controller port (the others follow it)."""
        if self.controller_port is not None:
            return self.controller_port
        return self.kafka_port + self.brokers


class Stack:
    """Kafka plus Mosquitto under one data folder; `up`, `down`, `status`.

    Args:
        settings: data dir, ports, broker count, security.
        topics: topic names the ACLs of a secured stack are made for.
    """

    def __init__(self, settings: StackSettings, topics: TopicSettings | None = None) -> None:
        self.settings = settings
        self.topics = topics or TopicSettings()
        self.security = StackSecurity(settings.data_dir) if settings.secure else None
        self.kafka = KafkaCluster(
            settings.data_dir,
            settings.kafka_port,
            settings.first_controller_port,
            brokers=settings.brokers,
            tiered_storage=settings.tiered_storage,
            heap=settings.kafka_heap,
            security=self.security,
        )
        self.mqtt = MosquittoBroker(settings.data_dir, settings.mqtt_port, security=self.security)
        # Made whether or not asked for, so `down` stops one that an earlier `up` started.
        self.analytics = KafkaCluster(
            settings.data_dir,
            settings.analytics_kafka_port,
            settings.analytics_first_controller_port,
            tiered_storage=settings.tiered_storage,
            heap=settings.kafka_heap,
            name="analytics",
        )
        self.mirror = MirrorMaker(
            settings.data_dir, self.kafka, self.analytics, heap=settings.mirror_heap
        )
        self.s3 = (
            S3Proxy(settings.data_dir, settings.s3_port, bucket=settings.s3_bucket)
            if settings.tier == "s3"
            else None
        )

    @classmethod
    def from_data_dir(
        cls, data_dir: Path, topics: TopicSettings | None = None, **overrides: Any
    ) -> Stack:
        """The stack last started in ``data_dir`` (its ports), with ``overrides`` applied.

        Raises:
            StackError: an override changes the broker count or security of a data dir that
                was formatted for others.
        """
        state_file = data_dir / _STATE_FILE
        saved = json.loads(state_file.read_text()) if state_file.exists() else {}
        given = {key: value for key, value in overrides.items() if value is not None}
        formatted = (data_dir / "kafka" / "cluster.id").exists() or any(
            (data_dir / "kafka").glob("**/meta.properties")
        )
        for key in _FIXED:
            before = saved.get(key, StackSettings.model_fields[key].default)
            if formatted and key in given and given[key] != before:
                raise StackError(
                    f"{data_dir} holds a stack made with {key}={before}; it cannot become "
                    f"{key}={given[key]}: use another --data-dir (or remove this one)"
                )
        was, wanted = saved.get("tier", "local"), given.get("tier")
        if wanted and wanted != was and formatted:
            # The remote tier holds segments the broker no longer has: switching loses them.
            raise StackError(
                f"{data_dir} tiers to {was!r}; its segments there would be lost with tier "
                f"{wanted!r}: use another --data-dir"
            )
        try:
            settings = StackSettings(**{**saved, **given, "data_dir": data_dir})
        except ValidationError as exc:  # a combination of options the stack cannot run
            raise StackError(describe_errors(exc, "LAKELESS_STACK_", "_")) from None
        return cls(settings, topics)

    @property
    def kafka_settings(self) -> KafkaSettings:
        """Client settings for this stack's brokers (with full rights: ``admin`` if secured)."""
        return self.kafka.client_settings()

    @property
    def security_protocol(self) -> str:
        """``SASL_SSL`` when secured, else ``PLAINTEXT``."""
        return "SASL_SSL" if self.security else "PLAINTEXT"

    def analytics_env(self) -> dict[str, str]:
        """The ``LAKELESS_*`` variables of a stage that reads the analytics cluster's replicas.

        Models it registers go to the primary's registry, which the scorers follow.
        """
        return {
            "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": self.analytics.bootstrap,
            "LAKELESS_REGISTRY__BOOTSTRAP_SERVERS": self.kafka.bootstrap,
        }

    def client_env(self, principal: str = ADMIN) -> dict[str, str]:
        """The ``LAKELESS_*`` variables that connect a stage to this stack (as ``principal``)."""
        if self.security is None:
            return {
                "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap,
                "LAKELESS_MQTT__URL": self.mqtt.url,
            }
        return self.security.client_env(principal, self.kafka.bootstrap, self.mqtt.url)

    def up(self) -> None:
        """Start whatever is not running (every Kafka node, Mosquitto); wait until they answer.

        With ``analytics``, also the analytics cluster (alongside the primary) and then
        MirrorMaker 2 (restarted when the topics to mirror changed: a pipeline registered since
        the last ``up``).

        Running nodes are left alone, so after a crash ``up`` brings back what is missing. A
        secured stack makes its secrets and certificates at the first ``up``, and (re)applies
        its ACLs and env files on every one.
        """
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        state = self.settings.model_dump(mode="json", exclude={"data_dir"})
        (self.settings.data_dir / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        if self.security:
            self.security.ensure()
        if self.s3:
            self.kafka.extra_config.update(self.s3.broker_config())
            self.s3.start()
        mqtt_was_running = self.mqtt.pid() is not None
        with ThreadPoolExecutor(1) as pool:
            # The analytics cluster formats and starts while the primary does.
            analytics = pool.submit(self.analytics.start) if self.settings.analytics else None
            try:
                self.kafka.start()
                try:
                    self.mqtt.start()
                except Exception:
                    if not mqtt_was_running:
                        self.kafka.stop()
                    raise
            except Exception:
                if self.s3:
                    self.s3.stop()
                raise
            if analytics is not None:
                analytics.result()
                self.mirror.start(self.mirrored_topics())
        if self.security:
            count = self.security.apply_acls(self.kafka_settings, self.topics)
            for topics in self._registered_pipelines():
                count += self.security.apply_acls(self.kafka_settings, topics)
            files = self.security.write_env_files(self.kafka.bootstrap, self.mqtt.url)
            logger.info("%d ACLs in place; client settings in %s", count, files[0])

    def grant(self, pipeline: Any) -> int:
        """Give every stage principal its ACLs on ``pipeline``'s topics (secured stack only).

        `up` does this for every registered pipeline; call it after creating a new one.
        """
        if self.security is None:
            return 0
        return self.security.apply_acls(self.kafka_settings, self._topics_of(pipeline))

    def _topics_of(self, pipeline: Any) -> TopicSettings:
        t = pipeline.topics
        return self.topics.model_copy(
            update={
                "raw": t.raw,
                "clean": t.clean,
                "dlq": t.dlq,
                "anomalies": t.anomalies,
                "scores": t.scores,
            }
        )

    def mirrored_topics(self) -> list[str]:
        """What MirrorMaker replicates: every registered pipeline's topics and both registries."""
        pipelines = [self.topics, *self._registered_pipelines()]
        kinds = ("raw", "clean", "dlq", "anomalies", "scores")
        return mirrored_topics(
            ({kind: getattr(topics, kind) for kind in kinds} for topics in pipelines),
            (self.topics.models, self.topics.schemas),
        )

    def _registered_pipelines(self) -> list[TopicSettings]:
        from lakeless.pipeline import SchemaRegistry

        settings = Settings(kafka=self.kafka_settings, topics=self.topics)
        try:
            pipelines = SchemaRegistry(settings, timeout=10).pipelines()
        except LakelessError as exc:  # no schema registry yet: no pipeline to grant
            logger.debug("no registered pipelines: %s", exc)
            return []
        return [self._topics_of(p) for p in pipelines]

    def down(self) -> dict[str, bool]:
        """Stop everything; returns which ones were running (S3 last: brokers copy until down)."""
        stopped: dict[str, bool] = {}
        if self.settings.analytics or self.mirror.pid() is not None:
            stopped["mirror"] = self.mirror.stop()
        stopped |= {"mqtt": self.mqtt.stop(), "kafka": self.kafka.stop()}
        if self.settings.analytics or self.analytics.pid() is not None:
            stopped["analytics"] = self.analytics.stop()
        if self.s3:
            stopped["s3"] = self.s3.stop()
        return stopped

    def status(self) -> dict[str, dict[str, Any]]:
        """The JSON-ready status `lakeless stack status --json` prints."""
        try:
            version: str | None = kafka_version(find_jars_dir())
        except Exception:
            version = None
        kafka = self._cluster_status(self.kafka, version)
        kafka["tier"] = self.settings.tier if self.settings.tiered_storage else None
        kafka["security_protocol"] = self.security_protocol
        mqtt_pid = self.mqtt.pid()
        mqtt: dict[str, Any] = {
            "running": mqtt_pid is not None,
            "url": self.mqtt.url,
            "pid": mqtt_pid,
        }
        if self.security:
            kafka["sasl_mechanism"] = "SCRAM-SHA-512"
            kafka["client_env"] = str(self.security.env_file())
            kafka["ca_location"] = str(self.security.ca_pem)
        report: dict[str, dict[str, Any]] = {"kafka": kafka, "mqtt": mqtt}
        if self.settings.analytics or self.analytics.pid() is not None:
            report["analytics"] = self._cluster_status(self.analytics, version)
            report["mirror"] = self.mirror.status()
        if self.s3:
            failures, last_failure = 0, None
            for node in self.kafka.nodes:  # copies the brokers retry, from their server.log
                count, last = copy_failures(node.home / "logs" / "server.log")
                failures, last_failure = failures + count, last or last_failure
            s3_pid = self.s3.pid()
            report["s3"] = {
                "running": s3_pid is not None and self.s3.answers(),
                "endpoint": self.s3.endpoint,
                "pid": s3_pid,
                "bucket": self.s3.bucket,
                "data_dir": str(self.s3.home),
                "copy_failures": failures,
                "last_copy_failure": last_failure,
            }
        return report

    def _cluster_status(self, cluster: KafkaCluster, version: str | None) -> dict[str, Any]:
        """One cluster's entry of `status`: running, bootstrap, its nodes."""
        pids = cluster.pids()
        any_running = any(pid is not None for pid in pids.values())
        return {
            "running": all(pid is not None for pid in pids.values()),
            "bootstrap": cluster.bootstrap,
            "cluster_id": cluster.cluster_id(),
            "version": version,
            "tiered_storage": self._tiered_storage_enabled(cluster, pids) if any_running else False,
            "pid": cluster.pid(),
            "data_dir": str(cluster.home),
            "brokers": [
                {
                    "id": node.node_id,
                    "port": node.kafka_port,
                    "controller_port": node.controller_port,
                    "pid": pids[node.node_id],
                    "running": pids[node.node_id] is not None,
                }
                for node in cluster.nodes
            ],
        }

    def _tiered_storage_enabled(self, cluster: KafkaCluster, pids: dict[int, int | None]) -> bool:
        """Ask a running node whether remote log storage is on (not just what we wrote)."""
        node_id = next(i for i, pid in pids.items() if pid is not None)
        resource = ConfigResource(ResourceType.BROKER, str(node_id))
        try:
            admin = make_admin(cluster.client_settings(), check=False)  # must outlive the future
            configs = admin.describe_configs([resource], request_timeout=5)[resource].result()
        except (KafkaException, StackError) as exc:
            logger.warning("cannot read broker config: %s", exc)
            return False
        entry = configs.get("remote.log.storage.system.enable")
        return entry is not None and entry.value == "true"
