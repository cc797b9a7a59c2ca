"""deploy/k8s/lakeless against the real lakeless CLI and settings, and against itself; no cluster.

`deploy/k8s/check/lakeless_check.py` (run by ``make k8s-check`` too) parses every ``lakeless
...`` command with the CLI's own Click parser and checks every ``LAKELESS_*`` variable against
`lakeless.config.Settings` and the command's options. The other tests check what neither
kubeconform nor the CLI can: probes on ports the stage listens on, credentials from the
stage's own KafkaUser, Services that select a Deployment.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
LAKELESS = K8S / "lakeless"
STAGES = {"bridge", "preprocess", "score", "twin", "dashboard", "serve", "train"}


def load_check() -> ModuleType:
    path = K8S / "check" / "lakeless_check.py"
    spec = importlib.util.spec_from_file_location("lakeless_check", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CHECK = load_check()


def docs(*paths: Path) -> list[dict[str, Any]]:
    return [doc for _, doc in CHECK.documents(list(paths))]


def test_every_lakeless_command_and_variable_is_the_clis() -> None:
    found, errors = CHECK.check([K8S])
    assert errors == []
    assert {c.name for c in found} == STAGES
    assert all(len(c.env) > 5 for c in found)  # the ConfigMap's variables were read too


@pytest.mark.parametrize(
    ("file", "old", "new", "error"),
    [
        (
            "preprocess.yaml",
            "--log-format, json",
            "--log-fromat, json",
            "No such option: --log-fromat (Possible options: --log-format)",
        ),
        ("train.yaml", "[lakeless, train]", "[lakeless, trian]", "No such command 'trian'"),
        ("score.yaml", "at-least-once,", "at-most-once,", "Invalid value for '--guarantee'"),
        ("train.yaml", '--min-rows, "1000"', "--min-rows, lots", "Invalid value for '--min-rows'"),
        (
            "score.yaml",
            "name: LAKELESS_SCORE__METRICS_PORT",
            "name: LAKELESS_SCORE__METRICS_PROT",
            "LAKELESS_SCORE__METRICS_PROT (env) is not a variable of `lakeless score`",
        ),
        (  # one `_` short: pydantic-settings would ignore it silently
            "config.yaml",
            "LAKELESS_KAFKA__BOOTSTRAP_SERVERS:",
            "LAKELESS_KAFKA_BOOTSTRAP_SERVERS:",
            "LAKELESS_KAFKA_BOOTSTRAP_SERVERS (ConfigMap lakeless) is not a variable",
        ),
        (  # a variable of another command (`lakeless stack up`)
            "score.yaml",
            "name: LAKELESS_SCORE__METRICS_PORT",
            "name: LAKELESS_STACK_KAFKA_PORT",
            "LAKELESS_STACK_KAFKA_PORT (env) is not a variable of `lakeless score`",
        ),
        (  # a value the settings model refuses
            "config.yaml",
            "SECURITY_PROTOCOL: SASL_SSL",
            "SECURITY_PROTOCOL: SASL_TLS",
            "LAKELESS_KAFKA__SECURITY_PROTOCOL=SASL_TLS): Input should be",
        ),
        ("score.yaml", "name: lakeless\n", "name: lakeless-cfg\n", "no ConfigMap 'lakeless-cfg'"),
    ],
)
def test_a_misspelled_command_option_or_variable_is_rejected(
    tmp_path: Path, file: str, old: str, new: str, error: str
) -> None:
    folder = tmp_path / "lakeless"
    shutil.copytree(LAKELESS, folder)
    text = (folder / file).read_text()
    assert old in text
    (folder / file).write_text(text.replace(old, new, 1))
    _, errors = CHECK.check([folder])
    assert any(error in e for e in errors), errors
    assert all(e.startswith(file) or file == "config.yaml" for e in errors), errors


def workloads() -> list[dict[str, Any]]:
    return [d for d in docs(LAKELESS) if CHECK.pod_spec(d) is not None]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = CHECK.pod_spec(doc)
    assert spec is not None
    return list(spec["containers"])


def test_probes_and_prometheus_use_the_ports_the_stage_listens_on() -> None:
    for doc in workloads():
        for container in containers(doc):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            listens = {
                int(v["value"])
                for v in container.get("env", [])
                if v["name"].endswith("PORT") and "value" in v
            }
            assert listens == set(ports.values()), doc["metadata"]["name"]
            if doc["kind"] != "Deployment":
                continue
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                action = container[probe].get("httpGet") or container[probe]["tcpSocket"]
                assert action["port"] in ports, (doc["metadata"]["name"], probe)
            annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
            if "prometheus.io/port" in annotations:
                assert int(annotations["prometheus.io/port"]) == ports["metrics"]


def test_each_stage_authenticates_as_its_own_kafka_user_with_strimzis_ca() -> None:
    users = {d["metadata"]["name"] for d in docs(K8S / "users.yaml") if d["kind"] == "KafkaUser"}
    (config,) = [d for d in docs(LAKELESS / "config.yaml") if d["kind"] == "ConfigMap"]
    ca = Path(config["data"]["LAKELESS_KAFKA__SSL_CA_LOCATION"])
    for doc in workloads():
        spec = CHECK.pod_spec(doc)
        assert spec is not None
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in containers(doc):
            env = {v["name"]: v for v in container["env"]}
            user = env["LAKELESS_KAFKA__SASL_USERNAME"]["value"]
            secret = env["LAKELESS_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert user in users and secret == {"name": user, "key": "password"}
            assert user == f"lakeless-{container['name']}"
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca.parent)]
            source = volumes[mount["name"]]["secret"]
            assert source["secretName"] == "lakeless-cluster-ca-cert"
            assert source["items"] == [{"key": "ca.crt", "path": ca.name}]


def test_services_select_a_deployment_and_name_its_ports() -> None:
    deployments = {d["metadata"]["name"]: d for d in workloads() if d["kind"] == "Deployment"}
    services = [d for d in docs(LAKELESS) if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} == {
        "lakeless-twin",
        "lakeless-dashboard",
        "lakeless-serve",
    }
    for service in services:
        selector = service["spec"]["selector"]
        (target,) = [
            d
            for d in deployments.values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        names = {p["name"] for c in containers(target) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_every_manifest_parses_as_yaml() -> None:
    for path in sorted(LAKELESS.glob("*.yaml")):
        assert list(yaml.safe_load_all(path.read_text())), path
