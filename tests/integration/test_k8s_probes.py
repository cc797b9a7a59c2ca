"""Each Deployment of deploy/k8s/lakeless, run as its pod would run it, answers its probes.

No cluster here, so the container is a local process: its ``command``/``args`` and its
environment (the ConfigMap, the Deployment's ``env``), with what only the cluster has replaced:
the test broker over PLAINTEXT instead of SASL_SSL to Strimzi, a test token and a SQLite twin
for the Secrets, free ports for the container ports (the variables that name them follow), the
test Mosquitto for the bridge. Then every probe of the Deployment must succeed, ``/metrics``
must refuse a request without the token and serve one with it (``/healthz``, open for the
probes, says only ``ok``), and SIGTERM must end it with status 0, as Kubernetes stops a pod.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.examples import car_fleet
from lakeless.registry import Registry, RegistrySettings
from lakeless.stack import free_port
from lakeless.testing.models import make_test_onnx
from lakeless.testing.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LAKELESS = ROOT / "deploy" / "k8s" / "lakeless"
TOKEN = "k8s-probe-test-token"
#: Cluster-side settings the local run replaces (SASL_SSL to Strimzi's bootstrap service).
CLUSTER_ONLY = (
    "LAKELESS_KAFKA__SASL_MECHANISM",
    "LAKELESS_KAFKA__SASL_USERNAME",
    "LAKELESS_KAFKA__SASL_PASSWORD",
    "LAKELESS_KAFKA__SSL_CA_LOCATION",
    "LAKELESS_MQTT__USERNAME",
    "LAKELESS_MQTT__PASSWORD",
)


def manifests() -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The ConfigMap's data and the Deployments by name."""
    config: dict[str, str] = {}
    deployments = {}
    for path in sorted(LAKELESS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "lakeless":
                config = {k: str(v) for k, v in doc["data"].items()}
            elif doc["kind"] == "Deployment":
                deployments[doc["metadata"]["name"]] = doc
    return config, deployments


CONFIG, DEPLOYMENTS = manifests()


@pytest.fixture(scope="module")
def topics(kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Fresh topics for this module (`lakeless topics create`), a live test model on them."""
    run = uuid.uuid4().hex[:8]
    names = {
        f"LAKELESS_TOPICS__{field.upper()}": f"k8s-{run}-{field}"
        for field in ("raw", "clean", "dlq", "anomalies", "scores", "models", "schemas")
    }
    env = {**clean_environ(), **names, "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    result = subprocess.run(
        [sys.executable, "-m", "lakeless", "topics", "create", "--partitions", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path_factory.mktemp("topics"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fields = {name.removeprefix("LAKELESS_TOPICS__").lower(): v for name, v in names.items()}
    settings = Settings(kafka=kafka, topics=TopicSettings(**fields))
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register(
            "car-autoencoder",
            make_test_onnx(),
            threshold=1.0,
            stage="live",
            features=car_fleet().feature_names,
        )
    return names


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LAKELESS_")}


def secret(ref: dict[str, str], twin_url: str) -> str | None:
    """What the local run puts where the pod reads a Secret (``None``: left unset)."""
    if ref["name"] == "lakeless-http":
        return TOKEN
    if ref["name"] == "lakeless-twin-db":
        return twin_url
    return None  # SASL and MQTT passwords: not used over PLAINTEXT


def pod_environment(
    container: dict[str, Any], ports: dict[int, int], overrides: dict[str, str], twin_url: str
) -> dict[str, str]:
    env = dict(CONFIG)
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif (value := secret(var["valueFrom"]["secretKeyRef"], twin_url)) is not None:
            env[var["name"]] = value
    for name, value in list(env.items()):
        if value.isdigit() and int(value) in ports:
            env[name] = str(ports[int(value)])
    for name in CLUSTER_ONLY:
        env.pop(name, None)
    return {**clean_environ(), **env, **overrides}


def probe(action: dict[str, Any], port: int) -> bool:
    """One probe as the kubelet runs it: an HTTP GET with a 2xx/3xx answer, or a TCP connect."""
    try:
        if "tcpSocket" in action:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        response = httpx.get(f"http://127.0.0.1:{port}{action['httpGet']['path']}", timeout=2)
        return 200 <= response.status_code < 400
    except (OSError, httpx.HTTPError):
        return False


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    log = (cwd / "stage.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "lakeless", *argv[1:]],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_the_stage_answers_its_probes_and_stops_on_sigterm(
    name: str,
    kafka: KafkaSettings,
    topics: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    (container,) = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    ports = {port: free_port() for port in named.values()}
    overrides = {
        **topics,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LAKELESS_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        "LAKELESS_DATA_DIR": str(tmp_path / "data"),
    }
    if name == "lakeless-bridge":
        mqtt: MqttSettings = request.getfixturevalue("mqtt")
        overrides["LAKELESS_MQTT__URL"] = mqtt.url
    env = pod_environment(container, ports, overrides, f"sqlite:///{tmp_path / 'twin.sqlite'}")
    argv = [*container["command"], *container.get("args", [])]
    probes = {kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    with running(argv, env, tmp_path) as process:
        pending = dict(probes)

        def answered() -> bool:
            for kind, action in list(pending.items()):
                target = action.get("httpGet") or action["tcpSocket"]
                if probe(action, ports[named[target["port"]]]):
                    del pending[kind]
            if pending and process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}):\n{stage_log()}")
            return not pending

        def stage_log() -> str:
            return f"{sorted(pending)} failed:\n" + (tmp_path / "stage.log").read_text()

        wait_for(answered, 120, f"{name}'s probes", stage_log, interval=0.2)
        if "metrics" in named:
            url = f"http://127.0.0.1:{ports[named['metrics']]}/metrics"
            assert httpx.get(url.replace("/metrics", "/healthz"), timeout=5).json() == {
                "status": "ok"
            }
            assert httpx.get(url, timeout=5).status_code == 401
            answer = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            assert answer.status_code == 200 and "lakeless_" in answer.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "stage.log").read_text()
