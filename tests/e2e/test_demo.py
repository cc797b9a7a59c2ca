"""``lakeless demo --duration``: the whole pipeline ends by itself, reports, leaves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lakeless.stack import free_port

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.mqtt]


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    data_dir.mkdir()
    ports = {"kafka_port": free_port(), "controller_port": free_port(), "mqtt_port": free_port()}
    (data_dir / "stack.json").write_text(json.dumps(ports))  # the ports `stack up` will use
    result = subprocess.run(
        [
            sys.executable, "-m", "lakeless", "demo", "--data-dir", str(data_dir),
            "--duration", "100", "--cars", "60", "--warmup", "6", "--epochs", "3",
            "--failure-rate", "30", "--dashboard-port", str(free_port()),
            "--twin-port", str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "final report" in out and "trained from Kafka" in out
    assert "live:" in out and "alarms" in out
    live = out[out.index("live:") :]
    alarms = int(live.split(" alarms")[0].rsplit(",", 1)[-1].strip().replace(",", ""))
    assert alarms > 0, out  # the model caught injected failures
    # Nothing left running: no stage, no broker of this data dir.
    left = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True).stdout
    assert left.strip() == "", left
