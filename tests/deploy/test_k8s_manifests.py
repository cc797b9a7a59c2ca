"""deploy/k8s against Strimzi's and Kubernetes' own schemas, offline, with unknown fields refused.

Needs what ``make k8s-check`` builds (kubeconform, build/k8s/schemas); without it these tests are
skipped, except in CI (``CI`` set), where ``make test`` builds it first and a skip would hide a
broken check.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CHECK = K8S / "check" / "k8s_check.py"
KUBECONFORM = ROOT / "build" / "tools" / "bin" / "kubeconform"
SCHEMAS = ROOT / "build" / "k8s" / "schemas"


@pytest.fixture(scope="module")
def tools() -> None:
    if KUBECONFORM.exists() and (SCHEMAS / ".complete").exists():
        return
    message = f"run `make k8s-check` first ({KUBECONFORM.relative_to(ROOT)}, schemas)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(CHECK), "validate", "--kubeconform", str(KUBECONFORM)]
    argv += ["--schemas", str(SCHEMAS), *map(str, paths)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_every_manifest_is_valid(tools: None) -> None:
    result = validate(K8S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout
    assert "Valid: 0," not in result.stdout


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: lakeless-score
spec:
  replicas: 2
  selector:
    matchLabels: {app: lakeless-score}
  template:
    metadata:
      labels: {app: lakeless-score}
    spec:
      containers:
        - name: score
          image: lakeless:0.1.0
          env:
            - name: LAKELESS_KAFKA__SASL_PASSWORD
              valueFrom:
                secretKeyRef: {name: lakeless-score, key: password}
"""


@pytest.mark.parametrize(
    ("source", "old", "new", "error"),
    [
        ("topics.yaml", "  partitions: 6", "  partitons: 6", "'partitons' not allowed"),
        ("kafka.yaml", "className:", "classname:", "'classname' not allowed"),
        ("kafka.yaml", "    tieredStorage:", "    tieredStorge:", "'tieredStorge' not allowed"),
        ("users.yaml", "operations: [Read]", "operation: [Read]", "'operation' not allowed"),
        ("users.yaml", "type: scram-sha-512", "type: scram-sha-256", "/spec/authentication/type"),
        ("users.yaml", "  labels:", "  lables:", "'lables' not allowed"),  # ObjectMeta too
        (None, "replicas: 2", "replica: 2", "'replica' not allowed"),
        (None, "secretKeyRef:", "secretRef:", "'secretRef' not allowed"),
        (None, "kind: Deployment", "kind: Deploymnt", "could not find schema"),
    ],
)
def test_a_misspelled_field_is_rejected(
    tools: None, tmp_path: Path, source: str | None, old: str, new: str, error: str
) -> None:
    text = (K8S / source).read_text() if source else DEPLOYMENT
    assert old in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(old, new, 1))
    result = validate(broken)
    assert result.returncode != 0, result.stdout
    assert error in result.stdout, result.stdout
    if source is None:
        good = tmp_path / "good.yaml"
        good.write_text(DEPLOYMENT)
        assert validate(good).returncode == 0  # only the typo made it fail


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_check", CHECK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closing_leaves_open_maps_and_combinator_branches_alone() -> None:
    close_objects = load_check().close_objects
    schema = {
        "type": "object",
        "properties": {
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "env": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                    "oneOf": [{"properties": {"value": {}}, "required": ["value"]}],
                },
            },
        },
    }
    assert close_objects(schema) == 2
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert "additionalProperties" not in props["config"]
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["env"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in props["env"]["items"]["oneOf"][0]
