"""Settings: one model per component, read from ``LAKELESS_*`` environment variables.

Nesting uses ``__``: ``LAKELESS_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Settings are frozen and
unknown keys are rejected. `KafkaSettings.librdkafka` dumps straight to the dict that
confluent-kafka's clients take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakeless.errors import ConfigError

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(BaseModel):
    """How to reach a Kafka cluster; `librdkafka` gives the client config."""

    model_config = _FROZEN

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    #: Any other librdkafka property, passed through unchanged (e.g. ``{"linger.ms": "5"}``).
    extra: dict[str, str] = Field(default_factory=dict)

    def librdkafka(self, **overrides: Any) -> dict[str, Any]:
        """The confluent-kafka config dict, with ``overrides`` (``linger_ms`` -> ``linger.ms``)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        config.update(self.extra)
        config.update({key.replace("_", "."): value for key, value in overrides.items()})
        return config


class MqttSettings(BaseModel):
    """How to reach the MQTT broker."""

    model_config = _FROZEN

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None

    @property
    def host(self) -> str:
        """Host name from `url`."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """Port from `url` (1883 by default, 8883 for ``mqtts``)."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"MQTT url must start with mqtt:// or mqtts://, got {self.url!r}")
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


class TopicSettings(BaseModel):
    """Topic names and the defaults `lakeless topics create` uses."""

    model_config = _FROZEN

    raw: str = "sensor-raw"
    clean: str = "sensor-clean"
    dlq: str = "sensor-dlq"
    models: str = "lakeless.models"
    anomalies: str = "anomalies"
    scores: str = "scores"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: Retention of the data topics (``-1``: forever; old segments live in the remote tier).
    retention_ms: int = -1
    #: How long data topics keep segments on the broker's disk before only the remote tier has them.
    local_retention_ms: int = 3_600_000
    tiered_storage: bool = True


class Settings(BaseSettings):
    """All settings; build with ``Settings()`` to read the environment."""

    model_config = SettingsConfigDict(
        env_prefix="LAKELESS_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    #: Where `lakeless stack` keeps broker data, logs and pids.
    data_dir: Path = Path(".lakeless")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, then apply ``overrides`` (nested dicts allowed)."""
    try:
        base = Settings()
        if not overrides:
            return base
        merged = base.model_dump()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return Settings.model_validate(merged)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
