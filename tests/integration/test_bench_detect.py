"""``bench detect --quick --json`` end to end (in memory, no broker, no quality asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lakeless.fleet import FAILURE_MODES
from lakeless.testing.fleet2 import MODES

pytestmark = pytest.mark.slow

COMMAND = (sys.executable, "-m", "lakeless", "bench", "detect", "--quick", "--json")
MODELS = ("autoencoder", "autoencoder-max", "zscore", "per-car", "ecod")


def test_quick_json_has_every_model_data_and_mode() -> None:
    out = subprocess.run(
        [*COMMAND, "--models", ",".join(MODELS)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LAKELESS_BENCH_SEEDS": "1,2"},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["suite"] == "detect" and data["quick"] is True
    assert data["default"] == "autoencoder"
    assert data["settings"]["seeds"] == [1, 2]
    # pyod is an optional peer: ECOD either ran or says why not.
    ran = [m for m in MODELS if m not in data["skipped"]]
    assert set(data["skipped"]) <= {"ecod"}
    pairs = {(r["model"], r["data"]) for r in data["results"]}
    for model in ran:
        assert (model, "fleet") in pairs and (model, "fleet2") in pairs
        # Per-car statistics belong to the cars trained on: none for the other fleet.
        assert ((model, "fleet->fleet2") in pairs) == (not model.startswith("per-car"))
    for result in data["results"]:
        modes = FAILURE_MODES if result["data"] == "fleet" else MODES
        assert result["per_mode"] and set(result["per_mode"]) <= set(modes)
        fa = result["false_alarms_per_10k"]
        assert len(fa["per_seed"]) == 2 and fa["mean"] >= 0 and fa["spread"] >= 0
        for metrics in result["per_mode"].values():
            recall = metrics["episode_recall"]
            assert recall["mean"] is None or 0.0 <= recall["mean"] <= 1.0
            assert set(metrics) == {"episode_recall", "delay_s_median", "event_recall", "episodes"}
    assert data["wall_seconds"] > 0
