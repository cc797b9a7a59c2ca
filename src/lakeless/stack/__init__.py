"""The embedded infrastructure: a real Apache Kafka broker (KRaft, tiered storage) and Mosquitto.

Example:
    >>> from pathlib import Path
    >>> stack = Stack(StackSettings(data_dir=Path("/tmp/lakeless-doc")))
    >>> stack.kafka.bootstrap
    '127.0.0.1:9092'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType
from pydantic import BaseModel, ConfigDict, Field

from lakeless.config import KafkaSettings
from lakeless.kafka import make_admin
from lakeless.stack._kafka import KafkaBroker, find_jars_dir, kafka_version, run_kafka_tool
from lakeless.stack._mosquitto import MosquittoBroker
from lakeless.stack._process import free_port

__all__ = [
    "KafkaBroker",
    "MosquittoBroker",
    "Stack",
    "StackSettings",
    "free_port",
    "run_kafka_tool",
]

logger = logging.getLogger(__name__)

_STATE_FILE = "stack.json"


class StackSettings(BaseModel):
    """Where the stack keeps its data and which loopback ports it listens on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path(".lakeless")
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    tiered_storage: bool = True
    kafka_heap: str = "1g"


class Stack:
    """Kafka plus Mosquitto under one data folder; `up`, `down`, `status`."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.kafka = KafkaBroker(
            settings.data_dir,
            settings.kafka_port,
            settings.controller_port,
            tiered_storage=settings.tiered_storage,
            heap=settings.kafka_heap,
        )
        self.mqtt = MosquittoBroker(settings.data_dir, settings.mqtt_port)

    @classmethod
    def from_data_dir(cls, data_dir: Path, **overrides: Any) -> Stack:
        """The stack last started in ``data_dir`` (its ports), with ``overrides`` applied."""
        state_file = data_dir / _STATE_FILE
        saved = json.loads(state_file.read_text()) if state_file.exists() else {}
        given = {key: value for key, value in overrides.items() if value is not None}
        return cls(StackSettings(**{**saved, **given, "data_dir": data_dir}))

    @property
    def kafka_settings(self) -> KafkaSettings:
        """Client settings for this stack's broker."""
        return KafkaSettings(bootstrap_servers=self.kafka.bootstrap)

    def up(self) -> None:
        """Start Kafka and Mosquitto (whichever is not running yet) and wait until both answer."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        state = self.settings.model_dump(exclude={"data_dir"})
        (self.settings.data_dir / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        self.kafka.start()
        try:
            self.mqtt.start()
        except Exception:
            self.kafka.stop()
            raise

    def down(self) -> dict[str, bool]:
        """Stop both; returns which ones were running."""
        return {"mqtt": self.mqtt.stop(), "kafka": self.kafka.stop()}

    def status(self) -> dict[str, dict[str, Any]]:
        """The JSON-ready status `lakeless stack status --json` prints."""
        kafka_pid = self.kafka.pid()
        try:
            version: str | None = kafka_version(find_jars_dir())
        except Exception:
            version = None
        mqtt_pid = self.mqtt.pid()
        return {
            "kafka": {
                "running": kafka_pid is not None,
                "bootstrap": self.kafka.bootstrap,
                "version": version,
                "tiered_storage": self._tiered_storage_enabled() if kafka_pid else False,
                "pid": kafka_pid,
                "data_dir": str(self.kafka.home),
            },
            "mqtt": {
                "running": mqtt_pid is not None,
                "url": self.mqtt.url,
                "pid": mqtt_pid,
            },
        }

    def _tiered_storage_enabled(self) -> bool:
        """Ask the running broker whether remote log storage is on (not just what we wrote)."""
        resource = ConfigResource(ResourceType.BROKER, "1")
        try:
            admin = make_admin(self.kafka_settings)  # must outlive the future
            configs = admin.describe_configs([resource], request_timeout=5)[resource].result()
        except KafkaException as exc:
            logger.warning("cannot read broker config: %s", exc)
            return False
        entry = configs.get("remote.log.storage.system.enable")
        return entry is not None and entry.value == "true"
