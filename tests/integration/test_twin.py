"""The twin against real Kafka, on SQLite and on a throwaway PostgreSQL server.

The PostgreSQL server is the one in ``LAKELESS_TEST_POSTGRES_URL``, or a fresh cluster
(``initdb`` + ``pg_ctl`` in a temporary folder, on a free port; as the ``postgres`` user when the
tests run as root, since PostgreSQL refuses to run as root). Without either, those tests skip.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.fleet import fleet_events
from lakeless.lifecycle import RunLimits
from lakeless.schema import SensorEvent, decode_clean_batch, encode_clean
from lakeless.score import Anomaly, TopFeature, encode_output
from lakeless.stack import free_port
from lakeless.testing.kafka import committed_offsets, end_offsets, produce_records
from lakeless.twin import ApiServer, TwinSettings, TwinStage, TwinStore

T0 = 1_700_000_000_000
CARS = 6
SECONDS = 60
PARTITIONS = 3


# ---- a throwaway PostgreSQL --------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: LAKELESS_TEST_POSTGRES_URL, or a fresh local cluster."""
    if url := os.environ.get("LAKELESS_TEST_POSTGRES_URL"):
        yield url
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL not installed (make setup installs it) and no server given")
    # Not under pytest's temporary folder: its parents are private to root.
    root = Path(tempfile.mkdtemp(prefix="lakeless-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    for command in (
        [initdb, "-D", str(data), "-A", "trust", "-U", "lakeless", "--no-sync"],
        [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"],
    ):
        done = subprocess.run([*run_as, *command], capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")
    try:
        yield f"postgresql://lakeless@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


# ---- data --------------------------------------------------------------------------------------


def fleet() -> tuple[list[SensorEvent], list[Anomaly]]:
    """A fleet with failures, and an anomaly for every labelled event (two model versions)."""
    evs = list(fleet_events(cars=CARS, seed=11, duration=SECONDS, failure_rate=60.0, start=T0))
    anomalies = [
        Anomaly(
            car_id=e.car_id,
            ts=e.ts,
            seq=e.seq,
            score=4.0 + e.seq / 100,
            threshold=1.5,
            model="car-ae",
            model_version=1 + (e.seq >= SECONDS // 2),  # hot swap half-way
            top_features=[TopFeature("coolant_temp", e.coolant_temp, 2.0)],
            failure=e.failure,
            source=f"sensor-clean[0]@{e.seq}",
        )
        for e in evs
        if e.failure is not None
    ]
    assert anomalies and len({a.car_id for a in anomalies}) >= 2
    return evs, anomalies


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> TopicSettings:
    return TopicSettings(
        clean=new_topic(partitions=PARTITIONS), anomalies=new_topic(partitions=PARTITIONS)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'twin.sqlite'}"
    base: str = request.getfixturevalue("postgres_url")
    # A database of its own per test, so tests never see each other's cars.
    import psycopg

    name = f"twin_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


def produce(kafka: KafkaSettings, topics: TopicSettings) -> tuple[int, int]:
    """Produce the fleet (a fifth of the readings twice, as an at-least-once upstream may)."""
    evs, anomalies = fleet()
    clean = [(e.car_id.encode(), encode_clean(e)) for e in evs]
    clean += clean[::5]
    produce_records(kafka, topics.clean, clean)
    produce_records(
        kafka, topics.anomalies, [(a.car_id.encode(), encode_output(a)) for a in anomalies]
    )
    return len(clean), len(anomalies)


def run_stage(kafka: KafkaSettings, topics: TopicSettings, url: str, group: str) -> Any:
    settings = Settings(kafka=kafka, topics=topics)
    stage = TwinStage(settings, TwinSettings(url=url, group_id=group, batch_size=200))
    return stage.run(RunLimits(until_idle=2.0, timeout=90))


def reference() -> dict[str, Any]:
    """The state the same events give when applied directly, in order, without Kafka."""
    evs, anomalies = fleet()
    with TwinStore.open("sqlite:///:memory:") as store:
        store.apply(decode_clean_batch([encode_clean(e) for e in evs]), anomalies)
        return store.snapshot()


# ---- tests -------------------------------------------------------------------------------------


def test_replaying_the_same_events_twice_leaves_the_same_state(
    kafka: KafkaSettings, topics: TopicSettings, db_url: str
) -> None:
    readings, anomalies = produce(kafka, topics)
    first = run_stage(kafka, topics, db_url, group=f"twin-{uuid.uuid4().hex[:8]}")
    assert (first.readings, first.anomalies, first.invalid) == (readings, anomalies, 0)
    assert first.new_readings == CARS * SECONDS  # the duplicates were absorbed
    assert first.new_anomalies == anomalies
    with TwinStore.open(db_url) as store:
        once = store.snapshot()
        cars = store.fleet()
    assert len(cars) == CARS
    assert all(c.events == SECONDS and c.last_seq == SECONDS - 1 for c in cars)
    # Consumed over 3 partitions per topic in whatever interleaving, on either database: the
    # state is the one the events give applied in order, directly (in SQLite).
    assert once == reference()
    # Replay: a second consumer group reads both topics from the start into the same database.
    second_group = f"twin-{uuid.uuid4().hex[:8]}"
    second = run_stage(kafka, topics, db_url, group=second_group)
    assert (second.readings, second.anomalies) == (readings, anomalies)
    assert (second.new_readings, second.new_anomalies) == (0, 0)
    with TwinStore.open(db_url) as store:
        assert store.snapshot() == once

    for topic in (topics.clean, topics.anomalies):
        committed = committed_offsets(kafka, second_group, topic)
        assert all(committed[p] == end for p, end in end_offsets(kafka, topic).items() if end)


def test_cli_with_http_api(kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path) -> None:
    """``lakeless twin --serve-port``: the API answers while it runs; a replay changes nothing."""
    readings, anomalies = produce(kafka, topics)
    url = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    first = run_stage(kafka, topics, url, group=f"twin-{uuid.uuid4().hex[:8]}")
    assert first.readings == readings
    with TwinStore.open(url) as store:
        once = store.snapshot()
        expected = store.car("car-00002")
    assert expected is not None
    port = free_port()
    env = {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LAKELESS_TOPICS__CLEAN": topics.clean,
        "LAKELESS_TOPICS__ANOMALIES": topics.anomalies,
        "LAKELESS_TWIN__URL": url,
    }
    command = [
        sys.executable,
        "-m",
        "lakeless",
        "twin",
        "--group-id",
        f"twin-{uuid.uuid4().hex[:8]}",
    ]
    command += ["--serve-port", str(port), "--until-idle", "3", "--timeout", "90", "--json"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        car = _poll_car(f"http://127.0.0.1:{port}", "car-00002", process)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert (stats["readings"], stats["anomalies"]) == (readings, anomalies)
    assert (stats["new_readings"], stats["new_anomalies"]) == (0, 0)
    assert car["car"] == expected.to_dict()
    assert len(car["readings"]) == SECONDS
    with TwinStore.open(url) as store:
        assert store.snapshot() == once


def _poll_car(base: str, car_id: str, process: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            response = httpx.get(f"{base}/cars/{car_id}", timeout=2)
            if response.status_code == 200:
                assert httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok"
                return dict(response.json())
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the twin API never answered")


def test_api_server_on_a_thread(tmp_path: Path) -> None:
    evs, anomalies = fleet()
    with TwinStore.open(f"sqlite:///{tmp_path / 't.sqlite'}") as store:
        store.apply(decode_clean_batch([encode_clean(e) for e in evs]), anomalies)
        with ApiServer(store, port=0) as api:
            opened = httpx.get(f"{api.url}/anomalies/open", timeout=5).json()
            fleet_view = httpx.get(f"{api.url}/cars", timeout=5).json()
        assert fleet_view["count"] == CARS
        assert {c["car_id"] for c in opened["cars"]} == {c.car_id for c in store.open_anomalies()}
