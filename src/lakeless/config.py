"""Settings: one model per component, read from ``LAKELESS_*`` environment variables.

Nesting uses ``__``: ``LAKELESS_KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Settings are frozen and
unknown keys are rejected. `KafkaSettings.librdkafka` dumps straight to the dict that
confluent-kafka's clients take. `load_settings` also reads the env file named by
``LAKELESS_ENV_FILE`` (e.g. a secured stack's ``client-score.env``); variables set in the
environment win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakeless.bridge import BridgeSettings
from lakeless.dashboard._settings import DashboardSettings
from lakeless.demo._settings import DemoSettings
from lakeless.errors import ConfigError
from lakeless.fleet._settings import FleetSettings
from lakeless.importer._settings import ImportSettings
from lakeless.preprocess import PreprocessSettings
from lakeless.registry._settings import RegistrySettings
from lakeless.score import ScoreSettings
from lakeless.serve import ServeSettings
from lakeless.train import TrainSettings
from lakeless.twin import TwinSettings

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
    #: CA certificate (PEM) that signed the broker's certificate, for ``mqtts://``; ``None``:
    #: the system's trusted CAs.
    ca_location: str | None = None

    def tls_arguments(self) -> dict[str, Any] | None:
        """Arguments for paho's ``tls_set`` when `url` is ``mqtts://``, else ``None``.

        Example:
            >>> MqttSettings(url="mqtts://h:8883", ca_location="/ca.pem").tls_arguments()
            {'ca_certs': '/ca.pem'}
            >>> MqttSettings().tls_arguments() is None
            True
        """
        if not self.url.startswith("mqtts://"):
            return None
        return {"ca_certs": self.ca_location}

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


class HttpSettings(BaseModel):
    """Who may call the HTTP endpoints (dashboard, twin API, model server, metrics).

    On loopback (the default) no token is needed. An endpoint bound to another interface, or any
    endpoint when ``require_token`` is set (the secured stack sets it), needs a bearer token and
    refuses to start without one; requests without it get 401.
    """

    model_config = _FROZEN

    #: The bearer token (``Authorization: Bearer <token>``).
    token: SecretStr | None = None
    #: A file holding the token (its first line), e.g. a Kubernetes secret mounted as a file.
    token_file: Path | None = None
    #: Require the token on loopback too.
    require_token: bool = False

    def bearer(self) -> str | None:
        """The token, from `token` or `token_file`; ``None`` when neither is set.

        Raises:
            ConfigError: the token file cannot be read or is empty.
        """
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is None:
            return None
        try:
            text = self.token_file.read_text().strip().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the HTTP token file {self.token_file}: {exc}") from exc
        if not text or not text[0].strip():
            raise ConfigError(f"the HTTP token file {self.token_file} is empty")
        return text[0].strip()


class TopicSettings(BaseModel):
    """Topic names and the defaults `lakeless topics create` uses."""

    model_config = _FROZEN

    #: Topics of the built-in car-fleet pipeline (other pipelines use ``NAME.raw``, ...).
    raw: str = "sensor-raw"
    clean: str = "sensor-clean"
    dlq: str = "sensor-dlq"
    anomalies: str = "anomalies"
    scores: str = "scores"
    #: The model registry and the schema registry, shared by every pipeline.
    models: str = "lakeless.models"
    schemas: str = "lakeless.schemas"
    partitions: int = Field(default=6, ge=1)
    #: Replicas per partition; ``None``: from the cluster's size (3 once it has 3 brokers).
    replication_factor: int | None = Field(default=None, ge=1)
    #: ``min.insync.replicas`` of the topics; ``None``: 2 with 3+ replicas, else 1.
    min_insync_replicas: int | None = Field(default=None, ge=1)
    #: Retention of the data topics (``-1``: forever; old segments live in the remote tier).
    retention_ms: int = -1
    #: How long data topics keep segments on the broker's disk before only the remote tier has them.
    local_retention_ms: int = 3_600_000
    #: Retention of score topics (every event's score; anomalies are kept like the data).
    scores_retention_ms: int = 7 * 24 * 3_600_000
    tiered_storage: bool = True


class Settings(BaseSettings):
    """All settings; build with ``Settings()`` to read the environment."""

    model_config = SettingsConfigDict(
        env_prefix="LAKELESS_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    #: The pipeline every stage works on (``car-fleet``: the built-in default).
    pipeline: str = "car-fleet"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    #: Where `lakeless stack` keeps broker data, logs and pids.
    data_dir: Path = Path(".lakeless")
    preprocess: PreprocessSettings = Field(default_factory=PreprocessSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    twin: TwinSettings = Field(default_factory=TwinSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    importer: ImportSettings = Field(default_factory=ImportSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    bridge: BridgeSettings = Field(default_factory=BridgeSettings)
    simulate: FleetSettings = Field(default_factory=FleetSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, then apply ``overrides`` (nested dicts allowed).

    ``LAKELESS_ENV_FILE`` names an env file read too (variables set in the environment win).

    Raises:
        ConfigError: a value is invalid; the message names each option and its variable.
    """
    env_file = os.environ.get("LAKELESS_ENV_FILE")
    try:
        if env_file and not Path(env_file).is_file():
            raise ConfigError(f"LAKELESS_ENV_FILE={env_file} is not a file")
        base = Settings(_env_file=env_file or None)  # type: ignore[call-arg]
        if not overrides:
            return base
        merged = base.model_dump()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError, env_prefix: str = "LAKELESS_", sep: str = "__") -> str:
    """One line per invalid value: ``--option (LAKELESS_X__Y=value): why``.

    A check across several values (a model validator, no location) is its reason alone.
    ``env_prefix`` and ``sep`` name the variables of settings read under another prefix (the
    stack's ``LAKELESS_STACK_X``).
    """
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        why = error["msg"].removeprefix("Value error, ")
        if not loc:
            lines.append(why)
            continue
        env = env_prefix + sep.join(part.upper() for part in loc)
        option = "--" + loc[-1].replace("_", "-")
        value = error.get("input")
        shown = "" if isinstance(value, dict) or value is None else f"={value}"
        lines.append(f"{option} ({env}{shown}): {why}")
    return "invalid settings: " + "; ".join(lines)
