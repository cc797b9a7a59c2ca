"""Issue 10, a newcomer's first hour: each numbered finding, through the CLI as the user met it.

Every test runs ``python -m lakeless`` in a subprocess against the session's real broker (or a
closed port, for "the cluster is down"), with topics and registries of its own, and checks the
exit code and the one line the user reads. The finding a test covers is in its name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lakeless.config import KafkaSettings
from lakeless.stack import free_port
from lakeless.testing.corpus import good_record
from lakeless.testing.kafka import produce_records

pytestmark = pytest.mark.kafka


@dataclass
class User:
    """A newcomer's shell: the environment every command of the test runs in."""

    env: dict[str, str]
    tmp: Path
    topics: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lakeless", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.tmp,
        )

    def ok(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def fails(self, *args: str, code: int = 1, timeout: float = 180) -> str:
        """Run a command that must fail with ``code`` and one clear error; return its output."""
        result = self.run(*args, timeout=timeout)
        output = result.stdout + result.stderr
        assert result.returncode == code, f"{args} exited {result.returncode}: {output}"
        assert "Traceback" not in output, output
        return " ".join(output.split())  # rich wraps lines; compare as one line


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKELESS_")}
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def user(kafka: KafkaSettings, tmp_path: Path) -> User:
    """A user whose default pipeline has topics and registries of its own, all created."""
    run = uuid.uuid4().hex[:8]
    topics = {
        name: f"fh-{run}.{name}"
        for name in ("raw", "clean", "dlq", "anomalies", "scores", "models", "schemas")
    }
    env = {
        **_base_env(),
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        **{f"LAKELESS_TOPICS__{name.upper()}": topic for name, topic in topics.items()},
    }
    person = User(env, tmp_path, topics)
    person.ok("topics", "create")
    return person


@pytest.fixture
def offline(tmp_path: Path) -> User:
    """A user whose bootstrap servers point at a port nothing listens on."""
    env = {**_base_env(), "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    return User(env, tmp_path)


def _stats(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data


# ---- 1. simulate --fast ends at now; relative starts -------------------------------------------


def test_1_fast_simulation_ends_now_so_preprocess_takes_every_event(user: User) -> None:
    user.ok("simulate", "--to", "kafka", "--cars", "20", "--duration", "1800", "--fast")
    stats = user.tmp / "pre.json"
    user.ok("preprocess", "--until-idle", "5", "--stats-json", str(stats))
    counts = _stats(stats)
    assert counts["in"] == 20 * 1800 and counts["dead_lettered"] == 0, counts
    relative = user.ok("simulate", "--to", "null", "--start=-30m", "--count", "5", "--json")
    assert json.loads(relative.stdout)["events"] == 5


# ---- 2. the cluster is down: every command fails fast, in one line naming it -------------------


@pytest.mark.parametrize(
    "args",
    [
        ("simulate", "--to", "kafka", "--count", "10", "--fast"),
        ("preprocess", "--until-idle", "5"),
        ("score", "--until-idle", "5"),
        ("twin", "--until-idle", "5"),
        ("train",),
        ("topics", "list"),
        ("topics", "create"),
        ("models", "list"),
        ("pipeline", "list"),
    ],
    ids=lambda args: "-".join(args[:2]),
)
def test_2_cluster_down_fails_fast_naming_the_servers(offline: User, args: tuple[str, ...]) -> None:
    output = offline.fails(*args, timeout=120)
    servers = offline.env["LAKELESS_KAFKA__BOOTSTRAP_SERVERS"]
    assert f"Kafka at {servers} did not answer within 10s" in output, output
    assert "%3|" not in output  # librdkafka's own lines go through our logger, not raw stderr


def test_2_import_to_a_down_cluster_fails_fast(offline: User) -> None:
    path = offline.tmp / "events.jsonl"
    path.write_bytes(good_record() + b"\n")
    output = offline.fails("import", str(path), timeout=120)
    assert "did not answer within 10s" in output, output


# ---- 3. the bridge: see tests/integration/test_bridge.py (sessions, clean stop) ----------------


def test_3_bridge_shares_nothing_by_default(user: User) -> None:
    shown = " ".join(user.ok("bridge", "--help").stdout.split())
    assert "[default: lakeless-bridge]" not in shown
    assert "--share-group" in shown


# ---- 5. no tracebacks for bad files and bad numbers --------------------------------------------


def test_5_import_of_a_binary_file_or_a_directory_is_an_error(user: User) -> None:
    binary = user.tmp / "model.onnx"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "not UTF-8 text" in user.fails("import", str(binary))
    assert "directory" in user.fails("import", str(user.tmp)).lower()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--interval", "0"), ("--speedup", "-1"), ("--duration", "-5"), ("--failure-rate", "-3")],
)
def test_5_simulate_refuses_impossible_numbers(offline: User, option: str, value: str) -> None:
    output = offline.fails("simulate", "--to", "null", f"{option}={value}", code=2)
    assert option in output, output


# ---- 7. not "stopped by idle" when something else is wrong -------------------------------------


def test_7_score_without_such_a_model_fails_naming_it(user: User) -> None:
    output = user.fails("score", "--model", "nosuch", "--until-idle", "5")
    assert "nosuch" in output, output


@pytest.mark.parametrize("stage", ["preprocess", "twin"])
def test_7_a_missing_input_topic_is_an_error(user: User, stage: str) -> None:
    user.env["LAKELESS_TOPICS__RAW"] = user.env["LAKELESS_TOPICS__CLEAN"] = "absent-topic"
    user.env["LAKELESS_TOPICS__ANOMALIES"] = "absent-topic"
    output = user.fails(stage, "--until-idle", "5")
    assert "absent-topic does not exist" in output and "lakeless topics create" in output, output


# ---- 8. nonsense is refused --------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["preprocess", "score", "twin", "bridge", "simulate", "import"])
@pytest.mark.parametrize("option", ["--timeout", "--until-idle"])
def test_8_negative_limits_are_refused(offline: User, stage: str, option: str) -> None:
    args = (stage, f"{option}=-1") if stage != "import" else (stage, "x.csv", f"{option}=-1")
    output = offline.fails(*args, code=2)
    assert option in output, output


def test_8_import_counts_and_files_that_make_no_sense(user: User) -> None:
    csv_file = user.tmp / "one.csv"
    csv_file.write_text("car,time,speed\ncar1,1567606196,20.0\n")
    assert "--count" in user.fails("import", str(csv_file), "--count=-5", code=2)
    empty = user.tmp / "empty.csv"
    empty.write_text("")
    assert "empty" in user.fails("import", str(empty)).lower()
    unrelated = user.tmp / "unrelated.csv"
    unrelated.write_text("a,b\n1,2\n")
    output = user.fails("import", str(unrelated))
    assert "car_id" in output or "columns" in output, output
    assert "foo" in user.fails("import", str(csv_file), "--scale", "foo=2", code=2)
    assert "--scale" in user.fails("import", str(csv_file), "--scale", "speed", code=2)


# ---- 10. a new group on preprocess would write everything again --------------------------------


def test_10_a_new_group_refuses_to_reprocess_into_a_filled_topic(
    user: User, kafka: KafkaSettings
) -> None:
    produce_records(kafka, user.topics["raw"], [(b"car-1", good_record(seq=i)) for i in range(20)])
    user.ok("preprocess", "--until-idle", "3")
    output = user.fails("preprocess", "--until-idle", "3", "--group-id", "another")
    assert "--reprocess" in output and user.topics["clean"] in output, output
    stats = user.tmp / "again.json"
    user.ok(
        *("preprocess", "--until-idle", "3", "--group-id", "another", "--reprocess"),
        *("--stats-json", str(stats)),
    )
    assert _stats(stats)["in"] == 20


# ---- 11. output glitches -----------------------------------------------------------------------


def test_11_where_type_errors_read_well(user: User) -> None:
    output = user.fails("preprocess", "--where", "speed > 'fast'", code=2)
    assert "string string" not in output, output
    assert "speed" in output and "'fast'" in output, output


def test_11_the_last_progress_line_agrees_with_the_stats(user: User, kafka: KafkaSettings) -> None:
    produce_records(kafka, user.topics["raw"], [(b"car-1", good_record(seq=i)) for i in range(50)])
    stats = user.tmp / "pre.json"
    result = user.ok(
        "preprocess", "--until-idle", "3", "--stats-json", str(stats), "--log-format", "json"
    )
    counts = _stats(stats)
    assert counts["in"] == 50 and float(str(counts["seconds"])) > 0
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert all(line.get("data", {}).get("seconds", 1) != 0.0 for line in lines), lines


def _iter_lines(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line.strip())
