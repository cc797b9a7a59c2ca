"""The twin against real Kafka, on SQLite and on a throwaway PostgreSQL server.

The PostgreSQL server is the one in ``LAKELESS_TEST_POSTGRES_URL``, or a fresh cluster
(``initdb`` + ``pg_ctl`` in a temporary folder, on a free port; as the ``postgres`` user when the
tests run as root, since PostgreSQL refuses to run as root). Without either, those tests skip.

Every stage test runs for the car fleet and for the pumps example (no sequence field), and
checks the twin the stage leaves against the one the same events give applied directly, in
order, to an in-memory SQLite store.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import car_fleet, example_schema
from lakeless.lifecycle import RunLimits
from lakeless.pipeline import Pipeline, PipelineTopics, SchemaRegistry
from lakeless.schema import CleanCodec, Decoder, PipelineSchema, empty_batch
from lakeless.schema.outputs import AnomalyRecord, OutputCodec
from lakeless.stack import free_port
from lakeless.testing.kafka import committed_offsets, end_offsets, produce_records
from lakeless.testing.readings import perfect_anomalies, readings
from lakeless.testing.waiting import wait_for
from lakeless.twin import TwinStage, TwinStats, TwinStore, open_store

SCHEMAS = {"car-fleet": car_fleet(), "pumps": example_schema("pumps")}
ENTITIES = 6
STEPS = 60
PARTITIONS = 3
KEEP_READINGS = 40  # fewer than STEPS: the stage prunes while it applies


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


def new_database(base: str) -> str:
    """A database of its own on the server of ``base``, so tests never see each other's tables."""
    import psycopg

    name = f"twin_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'twin.sqlite'}"
    return new_database(request.getfixturevalue("postgres_url"))


# ---- data --------------------------------------------------------------------------------------


def data(schema: PipelineSchema, seed: int = 11) -> tuple[list[Any], list[AnomalyRecord]]:
    """Readings with faults, and an anomaly for every labelled one (two model versions)."""
    events = readings(schema, entities=ENTITIES, seconds=STEPS, seed=seed, fault_length=12)
    anomalies = perfect_anomalies(schema, events, model="ae")
    half = len(anomalies) // 2
    anomalies = [
        a if i < half else OutputCodec(schema).anomaly(**{**_fields(a), "model_version": 2})
        for i, a in enumerate(anomalies)  # a hot swap half-way
    ]
    assert anomalies and len({a.key for a in anomalies}) >= 2
    return events, anomalies


def _fields(anomaly: AnomalyRecord) -> dict[str, Any]:
    return {
        "key": anomaly.key,
        "time": anomaly.time,
        "sequence": anomaly.sequence,
        "score": anomaly.score,
        "threshold": anomaly.threshold,
        "model": anomaly.model,
        "model_version": anomaly.model_version,
        "top_features": anomaly.top_features,
        "label": anomaly.label,
        "source": anomaly.source,
    }


def make_pipeline(name: str, new_topic: Callable[..., str]) -> Pipeline:
    """The example ``name`` with topics of its own."""
    schema = SCHEMAS[name]
    topics = PipelineTopics(
        raw="unused",
        clean=new_topic(partitions=PARTITIONS),
        dlq="unused",
        anomalies=new_topic(partitions=PARTITIONS),
        scores="unused",
    )
    if name == "car-fleet":
        builtin = Pipeline.builtin(Settings())
        return Pipeline.new(name, schema, topics=topics, model=builtin.model)
    return Pipeline.new(f"{name}-{uuid.uuid4().hex[:6]}", schema, topics=topics)


def produce(kafka: KafkaSettings, pipeline: Pipeline, seed: int = 11) -> tuple[int, int]:
    """Produce the data (a fifth of the readings twice, as an at-least-once upstream may)."""
    schema = pipeline.schema
    events, anomalies = data(schema, seed)
    codec, outputs = CleanCodec(schema), OutputCodec(schema)
    clean = [(getattr(e, schema.key).encode(), codec.encode(e)) for e in events]
    clean += clean[::5]
    produce_records(kafka, pipeline.topics.clean, clean)
    produce_records(
        kafka,
        pipeline.topics.anomalies,
        [(a.key.encode(), outputs.encode(a)) for a in anomalies],
    )
    return len(clean), len(anomalies)


def twin_settings(kafka: KafkaSettings, url: str, group: str) -> Settings:
    return Settings(
        kafka=kafka,
        twin={"url": url, "group_id": group, "batch_size": 200, "keep_readings": KEEP_READINGS},
    )


def run_stage(kafka: KafkaSettings, pipeline: Pipeline, url: str, group: str) -> TwinStats:
    stage = TwinStage(twin_settings(kafka, url, group), pipeline)
    return stage.run(RunLimits(until_idle=2.0, timeout=120))


def reference(pipeline: Pipeline, seed: int = 11) -> dict[str, Any]:
    """The twin the same events give applied directly, in order, without Kafka (SQLite)."""
    schema = pipeline.schema
    events, anomalies = data(schema, seed)
    codec = CleanCodec(schema)
    with open_store(
        "sqlite:///:memory:", schema, pipeline.name, keep_readings=KEEP_READINGS
    ) as store:
        store.apply(Decoder(schema).decode([codec.encode(e) for e in events]), anomalies)
        return store.snapshot()


def opened(url: str, pipeline: Pipeline, **options: Any) -> TwinStore:
    return open_store(url, pipeline.schema, pipeline.name, **options)


# ---- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(SCHEMAS))
def test_replaying_the_same_events_twice_leaves_the_same_state(
    kafka: KafkaSettings, new_topic: Callable[..., str], db_url: str, example: str
) -> None:
    pipeline = make_pipeline(example, new_topic)
    produced, anomalies = produce(kafka, pipeline)
    first = run_stage(kafka, pipeline, db_url, group=f"twin-{uuid.uuid4().hex[:8]}")
    assert (first.readings, first.anomalies, first.invalid) == (produced, anomalies, 0)
    assert first.new_readings == ENTITIES * STEPS  # the duplicates were absorbed
    assert first.new_anomalies == anomalies
    with opened(db_url, pipeline, read_only=True) as store:
        once = store.snapshot()
        states = store.all_entities()
    assert len(states) == ENTITIES
    assert all(s.events == STEPS and s.reading is not None for s in states)
    assert len(once["readings"]) == ENTITIES * KEEP_READINGS
    # Consumed over 3 partitions per topic in whatever interleaving and batches, on either
    # database: the twin is the one the events give applied in order, directly, in SQLite.
    assert once == reference(pipeline)
    # Replay: a second consumer group reads both topics from the start into the same database.
    second_group = f"twin-{uuid.uuid4().hex[:8]}"
    second = run_stage(kafka, pipeline, db_url, group=second_group)
    assert (second.readings, second.anomalies) == (produced, anomalies)
    assert (second.new_readings, second.new_anomalies) == (0, 0)
    with opened(db_url, pipeline, read_only=True) as store:
        assert store.snapshot() == once
    for topic in (pipeline.topics.clean, pipeline.topics.anomalies):
        committed = committed_offsets(kafka, second_group, topic)
        assert all(committed[p] == end for p, end in end_offsets(kafka, topic).items() if end)


def test_two_pipelines_share_one_database_without_seeing_each_other(
    kafka: KafkaSettings, new_topic: Callable[..., str], db_url: str
) -> None:
    """The car fleet's and the pumps' stages run at once and write to one database."""
    fleet, pumps = make_pipeline("car-fleet", new_topic), make_pipeline("pumps", new_topic)
    produce(kafka, fleet, seed=1)
    produce(kafka, pumps, seed=2)
    results: dict[str, TwinStats] = {}
    errors: list[BaseException] = []

    def run(pipeline: Pipeline) -> None:
        try:
            results[pipeline.name] = run_stage(kafka, pipeline, db_url, f"twin-{pipeline.name}")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in (fleet, pumps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors
    assert results[fleet.name].new_readings == results[pumps.name].new_readings == ENTITIES * STEPS
    for pipeline, seed in ((fleet, 1), (pumps, 2)):
        with opened(db_url, pipeline, read_only=True) as store:
            assert store.snapshot() == reference(pipeline, seed)
            keys = {s.key for s in store.all_entities()}
        assert keys == {f"{'car' if pipeline is fleet else 'pump'}-{i:03d}" for i in range(6)}


def test_out_of_order_batches_and_pruning_on_both_databases(db_url: str) -> None:
    """Shuffled into small batches, with pruning and replays: the in-order twin (no Kafka)."""
    for name, schema in SCHEMAS.items():
        pipeline = Pipeline.new(name, schema)
        events, anomalies = data(schema)
        records: list[tuple[bool, Any]] = [(True, e) for e in events] + [
            (False, a) for a in anomalies
        ]
        random.Random(5).shuffle(records)
        codec, decoder = CleanCodec(schema), Decoder(schema)
        with opened(db_url, pipeline, keep_readings=KEEP_READINGS) as store:
            for start in range(0, len(records), 13):
                chunk = records[start : start + 13]
                values = [codec.encode(r) for is_reading, r in chunk if is_reading]
                store.apply(
                    decoder.decode(values) if values else empty_batch(schema),
                    [r for is_reading, r in chunk if not is_reading],
                )
            shuffled = store.snapshot()
        # A reading that comes after the window moved past it is dropped uncounted (it cannot
        # be told apart from a replay): only the counts of readings may be lower than in order.
        expected = reference(pipeline)
        assert shuffled["readings"] == expected["readings"]
        assert shuffled["anomalies"] == expected["anomalies"]
        counts = ("events", "readings_pruned")
        for got, want in zip(shuffled["entities"], expected["entities"], strict=True):
            assert {k: v for k, v in got.items() if k not in counts} == {
                k: v for k, v in want.items() if k not in counts
            }
            assert got["events"] <= want["events"] == STEPS


def test_a_read_only_store_on_postgresql_runs_no_ddl(postgres_url: str) -> None:
    import psycopg

    url = new_database(postgres_url)
    pipeline = Pipeline.new("pumps", SCHEMAS["pumps"])

    def tables() -> list[str]:
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'pumps%'")
            return sorted(name for (name,) in rows)

    with opened(url, pipeline, read_only=True) as reader:  # before the tables exist
        assert not reader.ready() and reader.all_entities() == []
        assert tables() == []
        with opened(url, pipeline, keep_readings=KEEP_READINGS) as writer:
            events, anomalies = data(pipeline.schema)
            codec = CleanCodec(pipeline.schema)
            writer.apply(
                Decoder(pipeline.schema).decode([codec.encode(e) for e in events]), anomalies
            )
        assert tables() == ["pumps_anomalies", "pumps_entities", "pumps_meta", "pumps_readings"]
        assert reader.ready() and len(reader.all_entities()) == ENTITIES
        assert reader.open_anomalies() == [s for s in reader.all_entities() if s.episode_open]
        assert reader.snapshot() == reference(pipeline)


def test_cli_with_http_api_for_a_registered_pipeline(
    kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """``lakeless twin --pipeline P --serve-port``: the API answers while it runs."""
    pipeline = make_pipeline("pumps", new_topic)
    schemas = new_topic(partitions=1)
    SchemaRegistry(Settings(kafka=kafka, topics=TopicSettings(schemas=schemas))).create(pipeline)
    produced, anomalies = produce(kafka, pipeline)
    url = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    port = free_port()
    env = {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LAKELESS_TOPICS__SCHEMAS": schemas,
        "LAKELESS_TWIN__URL": url,
        "LAKELESS_TWIN__KEEP_READINGS": str(KEEP_READINGS),
        "LAKELESS_PIPELINE": pipeline.name,
    }
    command = [sys.executable, "-m", "lakeless", "twin", "--group-id", f"t-{uuid.uuid4().hex}"]
    command += ["--serve-port", str(port), "--until-idle", "3", "--timeout", "120", "--json"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        pump = _wait_for_entity(f"http://127.0.0.1:{port}", "pump-002", STEPS, process)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert (stats["readings"], stats["anomalies"]) == (produced, anomalies)
    assert stats["new_readings"] == ENTITIES * STEPS
    with opened(url, pipeline, read_only=True) as store:
        expected = store.entity("pump-002")
        assert store.snapshot()["entities"] == reference(pipeline)["entities"]
    assert expected is not None and pump["entity"] == expected.to_dict()
    assert pump["entity"]["reading"]["site"] == "site-0"
    assert pump["readings"][-1]["position"] == pump["entity"]["last_time"]  # no sequence


def _wait_for_entity(
    base: str, key: str, events: int, process: subprocess.Popen[str]
) -> dict[str, Any]:
    """GET /entities/{key} until the entity has ``events`` readings (the stage is done)."""

    def entity() -> dict[str, Any] | None:
        assert process.poll() is None, f"the twin exited ({process.returncode})"
        try:
            response = httpx.get(f"{base}/entities/{key}", timeout=2)
        except httpx.TransportError:
            return None
        if response.status_code != 200 or response.json()["entity"]["events"] != events:
            return None
        assert httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok"
        return dict(response.json())

    return wait_for(entity, 90, f"the twin API to show {key} with {events} readings")
