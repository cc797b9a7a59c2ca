"""Cluster layout, replication, the per-stage ACL table, env files and client error messages.

No process is started: brokers, keytool and Mosquitto are exercised by the integration tests.
"""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

import pytest
from confluent_kafka import KafkaError as ConfluentError

from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings, load_settings
from lakeless.errors import StackError
from lakeless.examples import example_schema
from lakeless.kafka import pipeline_topics, principal, replication_for
from lakeless.kafka._clients import KafkaAuthenticationError, KafkaAuthorizationError, _Guard
from lakeless.pipeline import Pipeline
from lakeless.score import ScoreSettings
from lakeless.stack import STAGE_ACCESS, STAGES, KafkaCluster, Stack, StackSecurity, StackSettings
from lakeless.stack._security import PRINCIPALS


def test_three_nodes_on_consecutive_ports(tmp_path: Path) -> None:
    stack = Stack(StackSettings(data_dir=tmp_path, kafka_port=19092, brokers=3))
    nodes = stack.kafka.nodes
    assert [(n.node_id, n.kafka_port, n.controller_port) for n in nodes] == [
        (1, 19092, 19095),
        (2, 19093, 19096),
        (3, 19094, 19097),
    ]
    assert stack.kafka.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert [n.home.name for n in nodes] == ["node-1", "node-2", "node-3"]
    # One node keeps today's layout and ports.
    single = Stack(StackSettings(data_dir=tmp_path))
    assert single.kafka.nodes[0].home == tmp_path.resolve() / "kafka"
    assert single.kafka.nodes[0].controller_port == 9093
    status = Stack(StackSettings(data_dir=tmp_path, brokers=3, kafka_port=19092)).status()
    assert [b["running"] for b in status["kafka"]["brokers"]] == [False] * 3
    assert status["kafka"]["security_protocol"] == "PLAINTEXT"


def test_overlapping_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="overlap"):
        KafkaCluster(tmp_path, 19092, 19093, brokers=3)


def test_a_formatted_data_dir_keeps_its_broker_count_and_security(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "cluster.id").write_text("abc\n")
    (tmp_path / "stack.json").write_text(json.dumps({"brokers": 3, "kafka_port": 19092}))
    assert len(Stack.from_data_dir(tmp_path).kafka.nodes) == 3  # remembered
    with pytest.raises(StackError, match="brokers=3"):
        Stack.from_data_dir(tmp_path, brokers=1)
    with pytest.raises(StackError, match="secure"):
        Stack.from_data_dir(tmp_path, secure=True)


def test_replication_follows_the_cluster_unless_set() -> None:
    assert [replication_for(n) for n in (1, 2, 3, 7)] == [(1, 1), (2, 1), (3, 2), (3, 2)]
    for spec in pipeline_topics(TopicSettings(), brokers=3):
        assert spec.replication_factor == 3 and spec.config["min.insync.replicas"] == "2"
    assert {s.replication_factor for s in pipeline_topics(TopicSettings(), brokers=1)} == {1}
    fixed = TopicSettings(replication_factor=2, min_insync_replicas=1)
    for spec in pipeline_topics(fixed, brokers=5):
        assert spec.replication_factor == 2 and spec.config["min.insync.replicas"] == "1"
    assert pipeline_topics(TopicSettings())[0].replication_factor is None  # the cluster decides


def test_the_acl_table_matches_what_the_stages_use() -> None:
    topics = TopicSettings()
    for stage in STAGE_ACCESS:
        for field in (*stage.read, *stage.write):
            assert isinstance(getattr(topics, field), str), (stage.name, field)
        assert stage.mqtt in (None, "read", "write")

    def allowed(stage: str, group: str) -> bool:
        return any(group.startswith(prefix) for prefix in STAGES[stage].groups)

    for pipeline in (Pipeline.builtin(Settings()), Pipeline.new("pumps", example_schema("pumps"))):
        for stage in ("preprocess", "score", "twin"):
            assert allowed(stage, pipeline.group(stage)), (pipeline.name, stage)
        transactional_id = ScoreSettings().transactional_id(pipeline.group("score"))
        assert any(transactional_id.startswith(p) for p in STAGES["score"].transactional_ids)
    assert allowed("score", "lakeless-registry")
    assert allowed("train", "lakeless-dataset") and allowed("serve", "lakeless-registry")
    # Least privilege: preprocess reads raw and writes clean and dlq, nothing else.
    preprocess = STAGES["preprocess"]
    assert preprocess.topics_read(topics) == ["sensor-raw"]
    assert preprocess.topics_written(topics) == ["sensor-clean", "sensor-dlq"]
    assert not preprocess.transactional_ids and preprocess.mqtt is None
    assert {s.name for s in STAGE_ACCESS if s.mqtt} == {"simulate", "bridge"}


def test_env_files_are_private_and_complete(tmp_path: Path) -> None:
    security = StackSecurity(tmp_path)
    secrets = {name: f"pw-{name}-0123456789" for name in (*PRINCIPALS, "keystore")}
    security.secrets_file.write_text(json.dumps(secrets))
    files = security.write_env_files("127.0.0.1:1,127.0.0.1:2", "mqtts://127.0.0.1:3")
    assert {f.name for f in files} == {"client.env", *(f"client-{s}.env" for s in STAGES)}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "client-score.env").read_text().splitlines()
        if not line.startswith("#")
    )
    env = {key: shlex.split(value)[0] for key, value in env.items()}
    assert env["LAKELESS_KAFKA__SASL_USERNAME"] == "score"
    assert env["LAKELESS_KAFKA__SASL_PASSWORD"] == secrets["score"]
    assert env["LAKELESS_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["LAKELESS_MQTT__URL"] == "mqtts://127.0.0.1:3"
    assert security.redact(f"x {secrets['admin']} y") == "x *** y"
    assert secrets["admin"] not in security.broker_properties().split("jaas.config")[0]


def test_an_env_file_configures_a_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "client-score.env"
    env_file.write_text(
        "# comment\nLAKELESS_KAFKA__SASL_USERNAME=score\nLAKELESS_KAFKA__SASL_PASSWORD='s3 cret'\n"
        "LAKELESS_KAFKA__SECURITY_PROTOCOL=SASL_SSL\nLAKELESS_MQTT__CA_LOCATION=/ca.pem\n"
    )
    monkeypatch.setenv("LAKELESS_ENV_FILE", str(env_file))
    monkeypatch.setenv("LAKELESS_KAFKA__SASL_USERNAME", "from-env")  # the environment wins
    settings = load_settings()
    assert settings.kafka.sasl_username == "from-env"
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "s3 cret"
    assert settings.mqtt.ca_location == "/ca.pem"
    assert MqttSettings(url="mqtts://h:1", ca_location="/ca.pem").tls_arguments() == {
        "ca_certs": "/ca.pem"
    }


def _guard(**config: str) -> _Guard:
    settings = KafkaSettings(
        bootstrap_servers="b1:9096,b2:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="score",
        sasl_password="secret",  # type: ignore[arg-type]
    )
    return _Guard(settings, dict(config))


def test_a_refused_login_names_servers_and_user_not_the_password() -> None:
    guard = _guard()
    guard.on_error(ConfluentError(ConfluentError._AUTHENTICATION, "SASL authentication error"))
    with pytest.raises(KafkaAuthenticationError) as raised:
        guard.raise_failure()
    message = str(raised.value)
    assert "authentication failed" in message and "'score'" in message
    assert "b1:9096,b2:9096" in message and "secret" not in message
    # Other errors are only logged: librdkafka retries them.
    quiet = _guard()
    quiet.on_error(ConfluentError(ConfluentError._ALL_BROKERS_DOWN, "2/2 brokers are down"))
    quiet.raise_failure()


def test_refusals_name_the_resource_and_the_principal() -> None:
    guard = _guard(**{"group.id": "lakeless-score", "transactional.id": "lakeless-score.h.0"})
    topic = guard.refused(
        ConfluentError(ConfluentError.TOPIC_AUTHORIZATION_FAILED, "denied"), "sensor-clean"
    )
    assert isinstance(topic, KafkaAuthorizationError)
    assert "User:score" in str(topic) and "topic 'sensor-clean'" in str(topic)
    group = guard.refused(ConfluentError(ConfluentError.GROUP_AUTHORIZATION_FAILED, "denied"))
    assert "consumer group 'lakeless-score'" in str(group)
    txn = guard.refused(
        ConfluentError(ConfluentError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "denied")
    )
    assert "transactional id 'lakeless-score.h.0'" in str(txn)
    assert principal(KafkaSettings()) == "User:ANONYMOUS"


def test_the_readme_shows_the_acl_table_of_the_code() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = {
        cells[0].strip("` "): cells
        for line in readme.splitlines()
        if line.startswith("| `")
        and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 6
    }
    topics = TopicSettings()

    def listed(cell: str) -> list[str]:
        return [] if cell == "-" else [v.strip("` ") for v in cell.split(",")]

    for stage in STAGE_ACCESS:
        _name, reads, writes, groups, txn, mqtt = rows[stage.name]
        assert listed(reads) == stage.topics_read(topics), stage.name
        assert listed(writes) == stage.topics_written(topics), stage.name
        assert [g.split(" ")[0].strip("`") for g in listed(groups)] == [
            *stage.groups,
            *stage.describe_groups,
        ], stage.name
        assert listed(txn) == list(stage.transactional_ids), stage.name
        assert mqtt == (stage.mqtt or "-"), stage.name
