import socket
from pathlib import Path

import pytest

from lakeless.config import TopicSettings
from lakeless.errors import StackError
from lakeless.kafka import pipeline_topics
from lakeless.stack import Stack, StackSettings
from lakeless.stack._kafka import find_jars_dir
from lakeless.stack._process import port_is_free


def test_pipeline_topics_follow_the_architecture() -> None:
    specs = {s.name: s for s in pipeline_topics(TopicSettings(partitions=4))}
    for name in ("sensor-raw", "sensor-clean", "sensor-dlq"):
        assert specs[name].partitions == 4
        assert specs[name].config["remote.storage.enable"] == "true"
        assert specs[name].config["retention.ms"] == "-1"
    models = specs["lakeless.models"]
    assert models.partitions == 1
    assert "remote.storage.enable" not in models.config  # tiering off, keeps every version
    assert models.config.get("cleanup.policy", "delete") == "delete"


def test_taken_port_is_detected() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])


def test_missing_jars_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELESS_KAFKA_LIBS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("lakeless.stack._kafka.JARS_SUBDIR", Path("nowhere"))
    with pytest.raises(StackError, match="make setup"):
        find_jars_dir()


def test_status_of_a_stopped_stack(tmp_path: Path) -> None:
    status = Stack(StackSettings(data_dir=tmp_path, kafka_port=19999, mqtt_port=18888)).status()
    assert status["kafka"]["running"] is False
    assert status["kafka"]["bootstrap"] == "127.0.0.1:19999"
    assert status["mqtt"] == {"running": False, "url": "mqtt://127.0.0.1:18888", "pid": None}


def test_analytics_cluster_has_its_own_ports_folder_and_a_one_way_identity_mirror(
    tmp_path: Path,
) -> None:
    stack = Stack(StackSettings(data_dir=tmp_path, kafka_port=19092, analytics=True))
    assert stack.analytics.bootstrap == "127.0.0.1:19192"
    assert stack.analytics.nodes[0].controller_port == 19193
    assert stack.analytics.home == tmp_path.resolve() / "analytics" != stack.kafka.home
    config = dict(
        line.split("=", 1)
        for line in stack.mirror.config(["sensor-clean", "lakeless.models"]).splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert config["primary.bootstrap.servers"] == "127.0.0.1:19092"
    assert config["analytics.bootstrap.servers"] == "127.0.0.1:19192"
    assert config["primary->analytics.enabled"] == "true"
    assert config["analytics->primary.enabled"] == "false"
    assert config["replication.policy.class"].endswith("IdentityReplicationPolicy")
    assert config["offset-syncs.topic.location"] == "target"  # nothing written to the primary
    # A properties file unescapes one backslash: the regex reaches Java as lakeless\.models.
    assert config["primary->analytics.topics"] == "lakeless\\\\.models|sensor-clean"
    assert stack.analytics_env() == {
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19192",
        "LAKELESS_REGISTRY__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    }
    with pytest.raises(ValueError, match="secured"):
        StackSettings(data_dir=tmp_path, analytics=True, secure=True)


def test_options_the_stack_cannot_combine_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="not available on a secured stack"):
        Stack.from_data_dir(tmp_path, analytics=True, secure=True)
    with pytest.raises(StackError, match="past 65535: set --analytics-port"):
        Stack.from_data_dir(tmp_path, analytics=True, kafka_port=65500)
