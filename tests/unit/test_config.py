import pytest
from pydantic import ValidationError

from lakeless.config import KafkaSettings, Settings, load_settings
from lakeless.errors import ConfigError


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELESS_KAFKA__BOOTSTRAP_SERVERS", "broker-a:9093,broker-b:9093")
    monkeypatch.setenv("LAKELESS_TOPICS__PARTITIONS", "12")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "broker-a:9093,broker-b:9093"
    assert settings.topics.partitions == 12


def test_librdkafka_dict_with_sasl_and_overrides() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="s3cret",  # type: ignore[arg-type]
        extra={"client.rack": "r1"},
    )
    config = kafka.librdkafka(linger_ms=7)
    assert config == {
        "bootstrap.servers": "b:9096",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
        "client.rack": "r1",
        "linger.ms": 7,
    }
    assert "s3cret" not in repr(kafka)


def test_unknown_keys_rejected_and_settings_frozen() -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(bootstrap="x")  # type: ignore[call-arg]
    kafka = KafkaSettings()
    with pytest.raises(ValidationError):
        kafka.bootstrap_servers = "other:9092"  # type: ignore[misc]


def test_load_settings_overrides_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELESS_KAFKA__SECURITY_PROTOCOL", "SSL")
    settings = load_settings(kafka={"bootstrap_servers": "k:1"})
    assert settings.kafka.bootstrap_servers == "k:1"
    assert settings.kafka.security_protocol == "SSL"
    with pytest.raises(ConfigError):
        load_settings(topics={"partitions": 0})
