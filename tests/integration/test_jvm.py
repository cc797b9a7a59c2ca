"""The JVM engines (jvm/) against the session's real broker and a throwaway PostgreSQL.

- Flink SQL (one MiniCluster job) and the Kafka Streams app: their Java tests (``*IT``) run
  with ``-Dlakeless.test.bootstrap`` set to this session's broker; they check the scores of
  tests/vectors/stream.json (Python's ONNX Runtime) within 1e-5 and a promotion mid-job.
- Kafka Connect: a standalone worker (Kafka's own ConnectStandalone) with the Debezium JDBC sink
  and lakeless' converter writes sensor-clean and anomalies into PostgreSQL; the rows must equal
  the topics' records.

`make setup` builds the modules (``jvm/*/target``); without them these tests skip.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort
import psycopg
import pytest
from psycopg.rows import dict_row

from lakeless.config import KafkaSettings
from lakeless.kafka import TopicSpec, create_topics
from lakeless.stack import free_port
from lakeless.testing.kafka import produce_records
from lakeless.testing.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
JVM = ROOT / "jvm"
VECTORS = ROOT / "tests" / "vectors"
CONNECT = JVM / "connect" / "target"
KAFKA_LIBS = ROOT / "infra" / "target" / "kafka-libs"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("mvn") is None or not (CONNECT / "plugin" / "lakeless-connect").is_dir(),
        reason="the JVM modules are not built (make setup)",
    ),
]


def _vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def test_flink_sql_and_kafka_streams_against_the_broker(kafka: KafkaSettings) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [
            "mvn",
            "--batch-mode",
            "--quiet",
            "-f",
            str(JVM / "pom.xml"),
            "test",
            "-Dtest=*IT",
            "-Dsurefire.failIfNoSpecifiedTests=false",
            f"-Dlakeless.test.bootstrap={kafka.bootstrap_servers}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    reports = sorted(glob.glob(str(JVM / "*" / "target" / "surefire-reports" / "*IT.txt")))
    summary = "\n".join(Path(r).read_text().strip().splitlines()[-1] for r in reports)
    assert done.returncode == 0, f"{summary}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "FlinkSqlIT" in summary and "ScorerAppIT" in summary, summary
    assert "Skipped: 0" in summary and "Failures: 0" in summary, summary
    print(f"JVM integration tests: {time.monotonic() - started:.1f}s\n{summary}")


# ---- Kafka Connect into PostgreSQL ---------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[str, int]]:
    """(psycopg URL, port) of LAKELESS_TEST_POSTGRES_URL's server or of a throwaway cluster."""
    if url := os.environ.get("LAKELESS_TEST_POSTGRES_URL"):
        yield url, int(url.rsplit(":", 1)[1].split("/")[0])
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL not installed (make setup installs it)")
    root = Path(tempfile.mkdtemp(prefix="lakeless-jvm-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    for command in (
        [initdb, "-D", str(data), "-A", "trust", "-U", "lakeless", "--no-sync"],
        [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"],
    ):
        subprocess.run([*run_as, *command], capture_output=True, text=True, check=True)
    try:
        yield f"postgresql://lakeless@127.0.0.1:{port}/postgres", port
    finally:
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _anomalies(stream: Any, registry: Any, topic: str) -> list[dict[str, Any]]:
    """Anomaly JSON (docs/data-contract.md section 4) of model v1 on stream.json's events."""
    entry = msgspec.msgpack.decode(base64.b64decode(registry["entries"]["accept-v1"]))
    names = entry["features"]
    events = [json.loads(e["json"]) for e in stream["events"]]
    session = ort.InferenceSession(entry["onnx"], providers=["CPUExecutionProvider"])
    rows = np.array([[e[f] for f in names] for e in events], np.float32)
    scores, errors = session.run(["score", "feature_errors"], {"features": rows})
    out = []
    for i, (event, score) in enumerate(zip(events, scores.tolist(), strict=True)):
        if score <= entry["threshold"]:
            continue
        top = np.argsort(-errors[i], kind="stable")[:3]
        out.append(
            {
                "car_id": event["car_id"],
                "ts": event["ts"],
                "seq": event["seq"],
                "score": score,
                "threshold": entry["threshold"],
                "model": entry["name"],
                "model_version": entry["version"],
                "top_features": [
                    {"name": names[j], "value": event[names[j]], "error": float(errors[i][j])}
                    for j in top.tolist()
                ],
                "failure": event.get("failure"),
                "source": f"{topic}[0]@{i}",
            }
        )
    return out


def test_connect_converter_with_the_debezium_jdbc_sink(
    kafka: KafkaSettings, postgres: tuple[str, int], tmp_path: Path
) -> None:
    url, port = postgres
    run = uuid.uuid4().hex[:8]
    clean, anomalies, schemas = f"jvm_clean_{run}", f"jvm_anomalies_{run}", f"jvm_schemas_{run}"
    create_topics(
        kafka, [TopicSpec(t, 1, 1, {"retention.ms": "-1"}) for t in (clean, anomalies, schemas)]
    )
    stream, registry = _vectors("stream.json"), _vectors("registry.json")
    car_fleet = next(s for s in _vectors("schemas.json")["schemas"] if s["pipeline"] == "car-fleet")
    produce_records(
        kafka, schemas, [(b"car-fleet", json.dumps(car_fleet["registry_record"]["value"]).encode())]
    )
    produce_records(
        kafka,
        clean,
        [(e["key"].encode(), bytes.fromhex(e["clean_hex"])) for e in stream["events"]],
    )
    expected_anomalies = _anomalies(stream, registry, clean)
    produce_records(
        kafka,
        anomalies,
        [(a["car_id"].encode(), json.dumps(a).encode()) for a in expected_anomalies],
    )

    worker = tmp_path / "worker.properties"
    worker.write_text(
        f"bootstrap.servers={kafka.bootstrap_servers}\n"
        "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
        "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
        f"offset.storage.file.filename={tmp_path / 'offsets'}\n"
        "offset.flush.interval.ms=1000\n"
        f"plugin.path={CONNECT / 'plugin'},{CONNECT / 'debezium-jdbc'}\n"
        # Service manifests instead of scanning every class of every plugin jar: faster start.
        "plugin.discovery=service_load\n"
        f"listeners=http://127.0.0.1:{free_port()}\n"
    )
    sink = tmp_path / "jdbc-sink.properties"
    sink.write_text(
        "name=lakeless-postgres\n"
        "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector\n"
        "tasks.max=1\n"
        f"topics={clean},{anomalies}\n"
        f"connection.url=jdbc:postgresql://127.0.0.1:{port}/postgres\n"
        "connection.username=lakeless\n"
        "connection.password=unused\n"
        "insert.mode=upsert\n"
        "primary.key.mode=record_value\n"
        "primary.key.fields=car_id,seq\n"
        "schema.evolution=basic\n"
        "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
        "value.converter=io.lakeless.connect.LakelessConverter\n"
        "value.converter.pipeline=car-fleet\n"
        f"value.converter.bootstrap.servers={kafka.bootstrap_servers}\n"
        f"value.converter.schemas.topic={schemas}\n"
        f"value.converter.topic.clean={clean}\n"
        f"value.converter.topic.anomalies={anomalies}\n"
    )
    log4j = tmp_path / "log4j2.properties"
    log4j.write_text(
        "rootLogger.level=WARN\nrootLogger.appenderRef.f.ref=f\n"
        f"appender.f.type=File\nappender.f.name=f\nappender.f.fileName={tmp_path / 'connect.log'}\n"
        "appender.f.layout.type=PatternLayout\nappender.f.layout.pattern=%d %p %c - %m%n\n"
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [
            "java",
            "-Xmx512m",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(worker),
            str(sink),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        clean_rows, anomaly_rows = wait_for(
            lambda: _rows(url, clean, anomalies, len(stream["events"]), len(expected_anomalies)),
            180,
            "PostgreSQL to get the rows",
            lambda: f"worker log:\n{(tmp_path / 'connect.log').read_text()[-3000:]}",
            interval=1.0,
        )
        took = time.monotonic() - started
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    events = {(e["car_id"], e["seq"]): e for e in (json.loads(x["json"]) for x in stream["events"])}
    assert len(clean_rows) == len(events)
    for row in clean_rows:
        event = events[(row["car_id"], row["seq"])]
        assert row == {**event, "failure": event.get("failure")}
    assert len(anomaly_rows) == len(expected_anomalies)
    by_id = {(a["car_id"], a["seq"]): a for a in expected_anomalies}
    for row in anomaly_rows:
        want = by_id[(row["car_id"], row["seq"])]
        assert json.loads(row.pop("top_features")) == want["top_features"]
        assert row == {k: v for k, v in want.items() if k != "top_features"}
    print(f"Connect: {len(clean_rows)} clean rows, {len(anomaly_rows)} anomalies in {took:.1f}s")


def _rows(
    url: str, clean: str, anomalies: str, n_clean: int, n_anomalies: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """Both tables' rows once they hold at least as many as expected (else None)."""
    try:
        with psycopg.connect(url, row_factory=dict_row) as db:
            got = [db.execute(f'SELECT * FROM "{t}"').fetchall() for t in (clean, anomalies)]
    except psycopg.errors.UndefinedTable:
        return None
    if len(got[0]) >= n_clean and len(got[1]) >= n_anomalies:
        return got[0], got[1]
    return None


# ---- the bench helper ----------------------------------------------------------------------------


def test_bench_helper_runs_the_streams_scorer(kafka: KafkaSettings) -> None:
    # One mode is enough here: both run the same app (ScorerAppIT covers the batched one).
    from lakeless.bench._jvm import STREAMS_PER_RECORD, run_kafka_streams

    run = uuid.uuid4().hex[:8]
    clean, models, anomalies = f"jvm-bench-clean-{run}", f"jvm-bench-models-{run}", f"a-{run}"
    create_topics(
        kafka,
        [
            TopicSpec(clean, 2, 1, {"retention.ms": "-1"}),
            TopicSpec(models, 1, 1, {"retention.ms": "-1"}),
            TopicSpec(anomalies, 2, 1, {"retention.ms": "-1"}),
        ],
    )
    stream, registry = _vectors("stream.json"), _vectors("registry.json")
    produce_records(
        kafka, models, [(b"car-autoencoder", base64.b64decode(registry["entries"]["accept-v1"]))]
    )
    events = [(e["key"].encode(), bytes.fromhex(e["clean_hex"])) for e in stream["events"]]
    produce_records(kafka, clean, events * 10)
    result = run_kafka_streams(
        kafka,
        clean_topic=clean,
        records=len(events) * 10,
        mode="per-record",
        models_topic=models,
        anomalies_topic=anomalies,
        schema_file=VECTORS / "car-fleet.avsc",
        heap="512m",
        timeout=300,
    )
    assert result.name == STREAMS_PER_RECORD
    assert not result.extra.get("failed"), result.extra
    assert result.events > 0 and result.seconds > 0, result
    assert result.extra["mode"] == "per-record"
