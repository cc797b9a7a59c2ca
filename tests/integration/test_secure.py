"""A secured stack (`lakeless stack up --secure`): SASL_SSL/SCRAM, ACLs per stage, MQTT over TLS.

One stack for the module, started with the CLI on free ports. Every stage runs with its own
principal from ``<data-dir>/client-<stage>.env``; a wrong password and a missing ACL must stop a
command quickly with a message that says what is wrong; no log of the run may hold a password.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Message
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from lakeless.config import KafkaSettings, Settings
from lakeless.examples import car_fleet
from lakeless.fleet import Fleet, fleet_events
from lakeless.kafka import make_admin
from lakeless.model import OnnxScorer
from lakeless.registry import Registry, RegistrySettings
from lakeless.schema.outputs import OutputCodec
from lakeless.stack import STAGES, free_port, free_ports
from lakeless.testing.events import decode_clean
from lakeless.testing.kafka import committed_offsets, end_offsets, read_topic
from lakeless.testing.models import FEATURES, make_test_onnx
from lakeless.testing.waiting import wait_for

MODEL = "car-ae"

OUTPUTS = OutputCodec(car_fleet())


def read_env(path: Path) -> dict[str, str]:
    """The variables of an env file written by `stack up --secure` (shell syntax)."""
    variables = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            variables[key] = shlex.split(value)[0] if value else ""
    return variables


def settings_of(env: dict[str, str]) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=env["LAKELESS_KAFKA__BOOTSTRAP_SERVERS"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=env["LAKELESS_KAFKA__SASL_USERNAME"],
        sasl_password=env["LAKELESS_KAFKA__SASL_PASSWORD"],  # type: ignore[arg-type]
        ssl_ca_location=env["LAKELESS_KAFKA__SSL_CA_LOCATION"],
    )


@dataclass
class SecureStack:
    data_dir: Path
    outputs: Path  # what the test's commands printed (grepped for passwords at the end)

    def env(self, principal: str = "admin") -> dict[str, str]:
        name = "client.env" if principal == "admin" else f"client-{principal}.env"
        return {
            **read_env(self.data_dir / name),
            "LAKELESS_DATA_DIR": str(self.data_dir / "work"),
            "COLUMNS": "200",
        }

    def kafka(self, principal: str = "admin") -> KafkaSettings:
        return settings_of(self.env(principal))

    def run(
        self, name: str, args: list[str], env: dict[str, str], timeout: float = 120
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        """``lakeless ARGS`` with ``env``; output kept in ``outputs/<name>.txt``."""
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "lakeless", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env},
        )
        seconds = time.monotonic() - started
        (self.outputs / f"{name}.txt").write_text(done.stdout + done.stderr)
        return done, seconds


def lakeless(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lakeless", *args], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"lakeless {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    data_dir = tmp_path_factory.mktemp("secure")
    port = free_ports(2)
    lakeless(
        "--log-level", "WARNING", "stack", "up", "--secure", "--data-dir", str(data_dir),
        "--kafka-port", str(port), "--controller-port", str(port + 1),
        "--mqtt-port", str(free_port()),
    )  # fmt: skip
    outputs = data_dir / "test-outputs"
    outputs.mkdir()
    (data_dir / "work").mkdir()
    try:
        stack = SecureStack(data_dir, outputs)
        done, _ = stack.run("topics-create", ["topics", "create"], stack.env())
        assert done.returncode == 0, done.stderr
        yield stack
    finally:
        subprocess.run(
            [sys.executable, "-m", "lakeless", "stack", "down", "--data-dir", str(data_dir)],
            capture_output=True,
            timeout=120,
        )


def test_status_files_and_permissions(secure: SecureStack) -> None:
    status = json.loads(lakeless("stack", "status", "--data-dir", str(secure.data_dir), "--json"))
    kafka, mqtt = status["kafka"], status["mqtt"]
    assert kafka["running"] and mqtt["running"]
    assert kafka["security_protocol"] == "SASL_SSL"
    assert kafka["tiered_storage"] is True  # asked over SASL_SSL as admin
    assert mqtt["url"].startswith("mqtts://127.0.0.1:")
    private = [
        "secrets.json",
        "client.env",
        *(f"client-{stage}.env" for stage in STAGES),
        "tls/broker.key",
        "tls/broker.p12",
        "kafka/server.properties",
        "mosquitto/passwd",
    ]
    for name in private:
        mode = stat.S_IMODE((secure.data_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    env = secure.env("score")
    assert env["LAKELESS_KAFKA__SASL_USERNAME"] == "score"
    assert env["LAKELESS_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["LAKELESS_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["LAKELESS_KAFKA__BOOTSTRAP_SERVERS"] == kafka["bootstrap"]
    assert Path(env["LAKELESS_KAFKA__SSL_CA_LOCATION"]).read_text().startswith("-----BEGIN")
    assert env["LAKELESS_MQTT__URL"] == mqtt["url"]
    passwords = json.loads((secure.data_dir / "secrets.json").read_text())
    assert len(set(passwords.values())) == len(passwords)  # one per principal
    assert env["LAKELESS_KAFKA__SASL_PASSWORD"] == passwords["score"]


def test_wrong_password_fails_fast_and_says_so(secure: SecureStack) -> None:
    wrong = f"not-{uuid.uuid4().hex}"
    for command in (["preprocess", "--until-idle", "60"], ["topics", "list"]):
        env = {**secure.env("preprocess"), "LAKELESS_KAFKA__SASL_PASSWORD": wrong}
        done, seconds = secure.run(f"wrong-password-{command[0]}", command, env, timeout=60)
        assert done.returncode != 0, done.stderr
        assert seconds < 30, f"{command[0]} took {seconds:.0f}s to fail"
        message = " ".join(done.stderr.split())  # rich wraps long lines
        assert "authentication failed" in message
        assert "'preprocess'" in message and env["LAKELESS_KAFKA__BOOTSTRAP_SERVERS"] in message
        assert wrong not in done.stdout + done.stderr


def test_missing_acl_names_the_topic_and_the_principal(secure: SecureStack) -> None:
    admin = make_admin(secure.kafka())
    read_raw = AclBindingFilter(
        ResourceType.TOPIC, "sensor-raw", ResourcePatternType.LITERAL, "User:preprocess", None,
        AclOperation.READ, AclPermissionType.ALLOW,
    )  # fmt: skip
    (future,) = admin.delete_acls([read_raw], request_timeout=30).values()
    assert future.result(), "preprocess had no READ on sensor-raw to take away"
    try:
        done, seconds = secure.run(
            "missing-acl-preprocess", ["preprocess", "--until-idle", "60"], secure.env("preprocess")
        )
        assert done.returncode != 0 and seconds < 30, (seconds, done.stderr[-2000:])
        message = " ".join(done.stderr.split())
        assert "sensor-raw" in message and "User:preprocess" in message, message[-1500:]
        # A producer without WRITE anywhere: twin's principal may only read.
        done, seconds = secure.run(
            "missing-acl-simulate",
            ["simulate", "--to", "kafka", "--cars", "2", "--duration", "5", "--fast"],
            secure.env("twin"),
        )
        assert done.returncode != 0 and seconds < 30, (seconds, done.stderr[-2000:])
        message = " ".join(done.stderr.split())
        assert "sensor-raw" in message and "User:twin" in message, message[-1500:]
    finally:
        lakeless("--log-level", "WARNING", "stack", "up", "--data-dir", str(secure.data_dir))
    # `stack up` put the ACL back.
    assert admin.describe_acls(read_raw, request_timeout=30).result()


def record_ends(messages: list[Message]) -> dict[int, int]:
    """Partition -> the offset after its last record."""
    ends: dict[int, int] = {}
    for message in messages:
        ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)
    return ends


def healthy_model() -> tuple[bytes, float]:
    items = [e for e in fleet_events(cars=10, seed=99, count=3000) if e.failure is None]
    data = np.array([[getattr(e, f) for f in FEATURES] for e in items], np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0) + 1e-3
    onnx = make_test_onnx(mean=mean.tolist(), scale=(1 / std).tolist())
    scores, _ = OnnxScorer(onnx, len(FEATURES)).score(data)
    return onnx, float(scores.max()) * 1.5


def test_pipeline_with_a_principal_per_stage(secure: SecureStack) -> None:
    """simulate -> bridge -> preprocess -> score (exactly-once) -> twin, each as itself."""
    run = uuid.uuid4().hex[:6]
    train = Settings(kafka=secure.kafka("train"))
    onnx, threshold = healthy_model()
    with Registry(train, RegistrySettings(timeout=20)) as registry:  # as the trainer would
        registry.register(MODEL, onnx, threshold=threshold, features=FEATURES, stage="live")

    work = secure.data_dir / "work"
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(stage: str, *args: str) -> Path:
        log = work / f"{stage}.log"
        with log.open("wb") as out:
            processes[stage] = (
                subprocess.Popen(
                    [sys.executable, "-m", "lakeless", *args],
                    env={**os.environ, **secure.env(stage), "LAKELESS_LOG_LEVEL": "INFO"},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        return log

    def alive() -> None:
        for stage, (process, log) in processes.items():
            assert process.poll() is None, f"{stage} exited:\n{log.read_text()[-3000:]}"

    cars, steps = 10, 30
    twin_db = work / "twin.sqlite"
    try:
        start("twin", "twin", "--url", f"sqlite:///{twin_db}", "--group-id", f"lakeless-twin-{run}")
        start(
            "score", "score", "--model", MODEL, "--guarantee", "exactly-once", "--all-scores",
            "--group-id", f"lakeless-score-{run}",
        )  # fmt: skip
        start("preprocess", "preprocess", "--group-id", f"lakeless-preprocess-{run}")
        bridge_log = start("bridge", "bridge", "--client-id", f"bridge-{run}")

        def subscribed() -> bool:
            alive()
            return "subscribed to" in bridge_log.read_text()

        wait_for(subscribed, 60, "the bridge to subscribe over MQTT/TLS")
        done, _ = secure.run(
            "simulate",
            ["simulate", "--cars", str(cars), "--duration", str(steps), "--fast", "--seed", "3",
             "--json"],
            secure.env("simulate"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        sent = json.loads(done.stdout)
        assert sent["delivered"] == sent["events"] == cars * steps
        admin = secure.kafka()

        def clean_complete() -> bool:
            alive()
            return sum(end_offsets(admin, "sensor-clean").values()) >= cars * steps

        wait_for(clean_complete, 120, "every event in sensor-clean")
        messages = read_topic(admin, "sensor-clean", expected=cars * steps)
        batch = decode_clean([m.value() for m in messages])
        clean = Counter(zip(batch.key, batch.sequence.tolist(), strict=True))
        expected = {(car, seq) for car in Fleet(cars, seed=3).car_ids for seq in range(steps)}
        assert set(clean) == expected

        def scored() -> bool:
            alive()
            return sum(end_offsets(admin, "scores").values()) >= sum(clean.values())

        wait_for(scored, 120, "every clean record scored")
        scores = Counter(
            (s.key, s.sequence)
            for s in (
                OUTPUTS.decode_score(m.value())
                for m in read_topic(admin, "scores", expected=len(clean))
            )
        )
        assert scores == clean

        # Past each partition's last record (a transaction's commit marker may follow it).
        last = {
            topic: record_ends(read_topic(admin, topic, timeout=30))
            for topic in ("sensor-clean", "anomalies")
        }

        def twin_done() -> bool:
            alive()
            for topic, ends in last.items():
                committed = committed_offsets(admin, f"lakeless-twin-{run}", topic)
                if any(committed.get(p, -1) < end for p, end in ends.items()):
                    return False
            return True

        wait_for(twin_done, 120, "the twin to catch up")
        alive()
    finally:
        for process, _log in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {stage: process.wait(60) for stage, (process, _log) in processes.items()}
    assert codes == dict.fromkeys(processes, 0), codes

    # No password in any log of the run: brokers, Mosquitto, every stage, every command.
    passwords = json.loads((secure.data_dir / "secrets.json").read_text()).values()
    logs = [
        *secure.data_dir.glob("kafka/logs/*"),
        *secure.data_dir.glob("mosquitto/*.log"),
        *work.glob("*.log"),
        *secure.outputs.glob("*.txt"),
    ]
    assert len(logs) >= 8, logs
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [p for p in passwords if p in text]
        assert not leaked, f"{path} holds a password"
