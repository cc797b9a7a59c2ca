"""``lakeless demo --duration``: the whole pipeline ends by itself, reports, leaves nothing.

The checks read the demo's ``--json-report``, not its human output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakeless.stack import free_port, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.mqtt]


def run_demo(
    data_dir: Path, *extra: str, duration: int = 100
) -> tuple[subprocess.CompletedProcess[str], Any]:
    report = data_dir.parent / "report.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "lakeless", "demo", "--data-dir", str(data_dir),
            "--duration", str(duration), "--cars", "60", "--warmup", "6", "--epochs", "3",
            "--failure-rate", "30", "--dashboard-port", str(free_port()),
            "--twin-port", str(free_port()), "--json-report", str(report), *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(report.read_text())


def check_report(report: dict[str, Any]) -> None:
    assert report["trained"]["version"] >= 1 and report["history_events"] > 0
    evaluation = report["evaluation"]
    assert evaluation is not None and evaluation["events"] > 0
    assert evaluation["alarms"] > 0, evaluation  # the model caught injected failures
    assert report["restarts"] == {}, report["restarts"]  # no stage crashed


def nothing_left(data_dir: Path) -> None:
    left = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True).stdout
    assert left.strip() == "", left  # no stage, no broker of this data dir


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    data_dir.mkdir()
    ports = {"kafka_port": free_port(), "controller_port": free_port(), "mqtt_port": free_port()}
    (data_dir / "stack.json").write_text(json.dumps(ports))  # the ports `stack up` will use
    _, report = run_demo(data_dir)
    check_report(report)
    nothing_left(data_dir)


def test_demo_on_three_secured_brokers(tmp_path: Path) -> None:
    """Issue 12.4: ``demo --brokers 3 --secure``; no password in any log of the run."""
    data_dir = tmp_path / "secure-demo"
    data_dir.mkdir()
    kafka = free_ports(3)
    ports = {"kafka_port": kafka, "controller_port": free_ports(3), "mqtt_port": free_port()}
    (data_dir / "stack.json").write_text(json.dumps(ports))
    # Three brokers with TLS start slower: the duration (from the demo's start) is longer.
    result, report = run_demo(data_dir, "--brokers", "3", "--secure", duration=240)
    check_report(report)
    assert "?token=" in result.stdout  # the dashboard's URL carries the bearer token
    nothing_left(data_dir)
    secrets = [*json.loads((data_dir / "secrets.json").read_text()).values()]
    secrets.append((data_dir / "http-token").read_text().strip())
    logs = [p for p in data_dir.rglob("*.log") if p.is_file()]
    assert logs
    for path in logs:
        text = path.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), path
