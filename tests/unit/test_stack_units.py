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
