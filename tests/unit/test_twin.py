"""Unit tests of the twin: the store's semantics on SQLite, the HTTP API, settings, the step.

Every store test runs for the car fleet (a sequence field) and for the pumps example (no
sequence: a reading's position is its time; an enum label; two context fields). The same
semantics on PostgreSQL are checked in ``tests/integration/test_twin.py`` (it starts a server);
``LAKELESS_TEST_POSTGRES_URL`` runs them here too.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lakeless.config import Settings
from lakeless.errors import ConfigError
from lakeless.examples import car_fleet, example_schema
from lakeless.pipeline import Pipeline
from lakeless.schema import CleanCodec, Decoder, PipelineSchema, empty_batch
from lakeless.schema.outputs import AnomalyRecord, OutputCodec
from lakeless.testing.readings import START, perfect_anomalies, readings
from lakeless.twin import TwinError, TwinSettings, TwinStats, TwinStep, TwinStore, make_app
from lakeless.twin import open_store as open_twin_store
from lakeless.twin._tables import table_prefix

SCHEMAS = {"car-fleet": car_fleet(), "pumps": example_schema("pumps")}

OpenStore = Callable[..., TwinStore]


def batch(schema: PipelineSchema, events: list[Any]) -> Any:
    codec = CleanCodec(schema)
    return Decoder(schema).decode([codec.encode(e) for e in events])


def position(schema: PipelineSchema, event: Any) -> int:
    return int(getattr(event, schema.sequence or schema.time))


def apply_in_batches(
    store: TwinStore,
    events: list[Any],
    anomalies: list[AnomalyRecord],
    size: int,
    seed: int | None = None,
) -> None:
    """Apply readings and anomalies in chunks of ``size`` (shuffled when ``seed`` is given)."""
    records: list[tuple[bool, Any]] = [(True, e) for e in events] + [(False, a) for a in anomalies]
    if seed is not None:
        random.Random(seed).shuffle(records)
    for start in range(0, len(records), size):
        chunk = records[start : start + size]
        store.apply(
            batch(store.schema, [r for is_reading, r in chunk if is_reading]),
            [r for is_reading, r in chunk if not is_reading],
        )


@pytest.fixture(
    params=["sqlite", *(["postgresql"] if os.environ.get("LAKELESS_TEST_POSTGRES_URL") else [])]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of the parametrized kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'twin.sqlite'}"
    return os.environ["LAKELESS_TEST_POSTGRES_URL"]


@pytest.fixture(params=sorted(SCHEMAS))
def schema(request: pytest.FixtureRequest) -> PipelineSchema:
    return SCHEMAS[request.param]


@pytest.fixture
def open_store(database: str, schema: PipelineSchema) -> Iterator[OpenStore]:
    """Factory: ``open_store(**options)`` -> a store of a new, empty pipeline of ``schema``."""
    opened: list[TwinStore] = []

    def make(pipeline: str | None = None, **options: Any) -> TwinStore:
        name = pipeline or f"t{uuid.uuid4().hex[:8]}"  # fresh tables, even in a shared server
        store = open_twin_store(database, schema, name, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# ---- the latest state ------------------------------------------------------------------------


def test_latest_reading_and_counts(open_store: OpenStore, schema: PipelineSchema) -> None:
    store = open_store()
    evs = readings(schema, entities=3, seconds=10, fault_every=None)
    result = store.apply(batch(schema, evs), [])
    assert (result.entities, result.new_readings, result.new_anomalies) == (3, 30, 0)
    states = store.all_entities()
    keys = sorted({getattr(e, schema.key) for e in evs})
    assert [s.key for s in states] == keys
    last = {getattr(e, schema.key): e for e in evs}  # the last reading of every entity
    for state in states:
        event = last[state.key]
        assert state.events == 10 and state.anomalies == 0
        assert state.last_position == position(schema, event)
        assert state.last_time == getattr(event, schema.time)
        assert state.reading is not None
        # The whole reading by field name, with the schema's own types.
        assert state.reading == {name: getattr(event, name) for name in schema.field_names}
        assert not state.episode_open and state.last_anomaly is None
    recent = store.recent_readings(keys[1], limit=4)
    assert [r.position for r in recent] == [position(schema, e) for e in evs if
                                            getattr(e, schema.key) == keys[1]][-4:]  # fmt: skip
    assert recent[-1].reading == state_reading(schema, last[keys[1]])
    assert store.entity("nope") is None
    assert store.counts() == {"entities": 3, "open_episodes": 0, "events": 30, "anomalies": 0}


def state_reading(schema: PipelineSchema, event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in schema.field_names}


def test_integer_and_boolean_fields_keep_their_type() -> None:
    schema = _schema_with(
        {"name": "on", "type": "boolean"}, {"name": "count", "type": "int", "min": 0, "max": 9}
    )
    (event,) = readings(schema, entities=1, seconds=1)
    with open_twin_store("sqlite:///:memory:", schema, "typed") as store:
        store.apply(batch(schema, [event]), [])
        state = store.entity("device-000")
    assert state is not None and state.reading is not None
    assert state.reading["on"] is event.on and type(state.reading["count"]) is int
    assert state.reading == state_reading(schema, event)


def _schema_with(*fields: dict[str, Any]) -> PipelineSchema:
    from lakeless.schema import load_schema

    return load_schema(
        {
            "type": "record",
            "name": "Device",
            "lakeless": {"key": "device_id", "time": "t"},
            "fields": [
                {"name": "device_id", "type": "string"},
                {"name": "t", "type": "long"},
                {"name": "x", "type": "double", "unit": "V", "min": 0, "max": 10},
                *fields,
            ],
        }
    )


def test_replay_leaves_the_same_snapshot(open_store: OpenStore, schema: PipelineSchema) -> None:
    store = open_store(keep_readings=25, keep_anomalies=4)
    evs = readings(schema, entities=4, seconds=60, fault_length=12)
    anoms = perfect_anomalies(schema, evs)
    assert len(anoms) > 4 * 2  # enough to prune anomalies too
    apply_in_batches(store, evs, anoms, size=97)
    once = store.snapshot()
    apply_in_batches(store, evs, anoms, size=97)
    assert store.snapshot() == once
    # Replayed in other batches, in another order: still nothing changes.
    apply_in_batches(store, evs, anoms, size=31, seed=1)
    assert store.snapshot() == once
    for state in store.all_entities():
        assert state.events == 60
        assert state.anomalies == sum(a.key == state.key for a in anoms)
    first = store.all_entities()[0].key
    assert sum(1 for r in once["readings"] if r["entity"] == first) == 25
    assert sum(1 for r in once["anomalies"] if r["entity"] == first) == 4


def test_out_of_order_within_the_window_gives_the_in_order_state(
    open_store: OpenStore, schema: PipelineSchema
) -> None:
    evs = readings(schema, entities=3, seconds=40)
    anoms = perfect_anomalies(schema, evs)
    ordered = open_store("ordered")
    apply_in_batches(ordered, evs, anoms, size=50)
    expected = ordered.snapshot()
    for seed in (2, 3):
        shuffled = open_store(f"shuffled{seed}")
        apply_in_batches(shuffled, evs, anoms, size=7, seed=seed)
        assert shuffled.snapshot() == expected


def test_an_older_reading_never_overwrites_a_newer_one(
    open_store: OpenStore, schema: PipelineSchema
) -> None:
    store = open_store()
    evs = readings(schema, entities=1, seconds=5, fault_every=None)
    store.apply(batch(schema, [evs[4]]), [])
    store.apply(batch(schema, [evs[1], evs[2]]), [])
    (state,) = store.all_entities()
    assert (state.last_position, state.last_time, state.events) == (
        position(schema, evs[4]),
        getattr(evs[4], schema.time),
        3,
    )
    assert state.reading == state_reading(schema, evs[4])


def test_pruning_keeps_counts_exact_and_ignores_readings_below_the_window(
    open_store: OpenStore, schema: PipelineSchema
) -> None:
    store = open_store(keep_readings=5)
    evs = readings(schema, entities=1, seconds=12, fault_every=None)
    store.apply(batch(schema, evs[2:]), [])  # steps 2..11: keeps 7..11, floor 7
    snap = store.snapshot()
    assert [r["position"] for r in snap["readings"]] == [position(schema, e) for e in evs[7:]]
    (state,) = store.all_entities()
    assert state.events == 10
    # Steps 0 and 1 come late, below the retained window: a replay cannot be told apart, so
    # they are ignored rather than counted twice on every replay.
    assert store.apply(batch(schema, evs[:2]), []).new_readings == 0
    assert store.snapshot() == snap
    store.apply(batch(schema, evs), [])
    assert store.snapshot() == snap


def test_pumps_without_a_sequence_field_are_identified_by_time() -> None:
    schema = SCHEMAS["pumps"]
    evs = readings(schema, entities=1, seconds=3, fault_every=None)
    codec = OutputCodec(schema)
    with open_twin_store("sqlite:///:memory:", schema, "pumps") as store:
        store.apply(batch(schema, evs), [])
        # Another reading at the same time is the same reading: not counted, not stored.
        again = [msgspec_replace(evs[1], flow_rate=1.0)]
        assert store.apply(batch(schema, again), []).new_readings == 0
        state = store.entity("pump-000")
        assert state is not None and state.events == 3
        assert state.last_position == state.last_time == START + 2000
        assert [r.position for r in store.recent_readings("pump-000")] == [
            START,
            START + 1000,
            START + 2000,
        ]
        assert store.recent_readings("pump-000")[1].reading["flow_rate"] == evs[1].flow_rate
        anomaly = codec.anomaly(
            key="pump-000", time=START + 1000, score=9.0, threshold=1.0, model="pumps-ae",
            model_version=1, top_features=[], label="cavitation",
        )  # fmt: skip
        store.apply(empty_batch(schema), [anomaly])
        state = store.entity("pump-000")
        assert state is not None and state.last_anomaly is not None
        assert state.last_anomaly.position == START + 1000
        assert state.last_anomaly.label == "cavitation"
        assert state.reading is not None and state.reading["site"] == "site-0"
        assert state.reading["pump_type"] == "centrifugal" and state.label is None


def msgspec_replace(event: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(event, **changes)


def test_anomalies_last_one_counts_and_versions(
    open_store: OpenStore, schema: PipelineSchema
) -> None:
    store = open_store()
    evs = readings(schema, entities=1, seconds=5, fault_every=None)
    store.apply(batch(schema, evs), [])
    codec = OutputCodec(schema)
    key = getattr(evs[0], schema.key)

    def anomaly(step: int, version: int) -> AnomalyRecord:
        e = evs[step]
        return codec.anomaly(
            key=key, time=getattr(e, schema.time), sequence=step, score=float(10 * step + version),
            threshold=1.0, model="m", model_version=version, top_features=[],
        )  # fmt: skip

    store.apply(empty_batch(schema), [anomaly(3, 1), anomaly(1, 1)])
    store.apply(empty_batch(schema), [anomaly(3, 2), anomaly(2, 2)])  # v2 re-scored step 3
    state = store.entity(key)
    assert state is not None and state.last_anomaly is not None
    assert state.anomalies == 4
    last = state.last_anomaly
    assert (last.position, last.model_version, last.score) == (position(schema, evs[3]), 2, 32.0)
    rows = store.recent_anomalies(key)
    assert [(a.position, a.model_version) for a in rows] == [
        (position(schema, evs[i]), v) for i, v in ((1, 1), (2, 2), (3, 1), (3, 2))
    ]
    store.apply(empty_batch(schema), [anomaly(3, 1)])  # replayed: no change
    assert store.entity(key) == state


def test_failure_episodes_follow_event_time(open_store: OpenStore, schema: PipelineSchema) -> None:
    store = open_store(episode_gap_ms=60_000)
    codec = OutputCodec(schema)
    base = readings(schema, entities=1, seconds=1, fault_every=None)[0]
    key = getattr(base, schema.key)

    def reading(second: int) -> Any:
        changes = {schema.time: START + second * 1000}
        if schema.sequence:
            changes[schema.sequence] = second
        return msgspec_replace(base, **changes)

    def anomaly(second: int) -> AnomalyRecord:
        return codec.anomaly(
            key=key, time=START + second * 1000, sequence=second, score=3.0, threshold=1.0,
            model="m", model_version=1, top_features=[],
        )  # fmt: skip

    # Anomalies at 0, 30 and 80 s form one episode (gaps <= 60 s); 200 s starts another.
    store.apply(batch(schema, [reading(i) for i in (0, 30, 80)]), [])
    store.apply(empty_batch(schema), [anomaly(i) for i in (0, 30, 80)])
    state = store.entity(key)
    assert state is not None
    assert (state.episode_open, state.episode_since, state.episode_anomalies) == (True, START, 3)
    assert [s.key for s in store.open_anomalies()] == [key]
    # A reading 61 s after the last anomaly closes the episode (event time, not wall clock).
    store.apply(batch(schema, [reading(141)]), [])
    state = store.entity(key)
    assert state is not None and not state.episode_open and state.episode_since == START
    assert store.open_anomalies() == []
    store.apply(batch(schema, [reading(200)]), [anomaly(200)])
    state = store.entity(key)
    assert state is not None
    assert (state.episode_open, state.episode_since, state.episode_anomalies) == (
        True,
        START + 200_000,
        1,
    )


def test_an_anomaly_before_its_reading_creates_the_entity(
    open_store: OpenStore, schema: PipelineSchema
) -> None:
    store = open_store()
    (event,) = readings(schema, entities=1, seconds=1, fault_every=None)
    key = getattr(event, schema.key)
    (anomaly,) = perfect_anomalies(schema, [event], labelled=False)
    store.apply(empty_batch(schema), [anomaly])
    state = store.entity(key)
    assert state is not None
    assert (state.reading, state.last_position, state.events) == (None, None, 0)
    assert state.episode_open and state.anomalies == 1
    store.apply(batch(schema, [event]), [])
    state = store.entity(key)
    assert state is not None and state.last_position == position(schema, event)
    assert state.episode_open


def test_a_failed_batch_changes_nothing(open_store: OpenStore, schema: PipelineSchema) -> None:
    store = open_store()
    first, second = readings(schema, entities=1, seconds=2, fault_every=None)
    store.apply(batch(schema, [first]), [])
    before = store.snapshot()
    (good,) = perfect_anomalies(schema, [second], labelled=False)
    bad = msgspec_replace(good, score=[1.0])  # cannot be bound as a number
    with pytest.raises(TwinError):
        store.apply(batch(schema, [second]), [good, bad])
    assert store.snapshot() == before


# ---- pipelines sharing a database ------------------------------------------------------------


def test_two_pipelines_share_a_database_without_seeing_each_other(database: str) -> None:
    cars, pumps = SCHEMAS["car-fleet"], SCHEMAS["pumps"]
    suffix = uuid.uuid4().hex[:6]
    car_events = readings(cars, entities=2, seconds=5)
    pump_events = readings(pumps, entities=3, seconds=4)
    with (
        open_twin_store(database, cars, f"cars-{suffix}") as fleet,
        open_twin_store(database, pumps, f"pumps-{suffix}") as plant,
    ):
        fleet.apply(batch(cars, car_events), perfect_anomalies(cars, car_events))
        plant.apply(batch(pumps, pump_events), perfect_anomalies(pumps, pump_events))
        assert [s.key for s in fleet.all_entities()] == ["car-000", "car-001"]
        assert [s.key for s in plant.all_entities()] == ["pump-000", "pump-001", "pump-002"]
        assert fleet.counts()["events"] == 10 and plant.counts()["events"] == 12
        assert fleet.entity("pump-000") is None and plant.entity("car-000") is None
        # The same entity key in both pipelines: still two different entities.
        plant.apply(batch(pumps, [msgspec_replace(pump_events[0], pump_id="car-000")]), [])
        car = fleet.entity("car-000")
        assert car is not None and car.events == 5 and car.reading is not None
        assert "seq" in car.reading and "pump_type" not in car.reading
        assert fleet.snapshot() == fleet.snapshot()
        assert {r["entity"] for r in plant.snapshot()["readings"]} >= {"car-000"}
        assert "car-000" not in {r["entity"] for r in plant.snapshot()["anomalies"]}


def test_pipelines_whose_names_map_to_the_same_tables_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    schema = SCHEMAS["pumps"]
    with open_twin_store(url, schema, "pumps-a"):
        pass
    assert table_prefix("pumps-a") == table_prefix("pumps_a") == table_prefix("Pumps-A")
    with pytest.raises(TwinError, match="pumps-a"):
        open_twin_store(url, schema, "pumps_a")


def test_table_names_are_valid_sql_names() -> None:
    assert table_prefix("car-fleet") == "car_fleet_"
    assert table_prefix("2024-meters") == "p_2024_meters_"
    long = table_prefix("x" * 100)
    assert len(long) <= 40 and long != table_prefix("x" * 99)
    with open_twin_store("sqlite:///:memory:", SCHEMAS["pumps"], "9" * 100) as store:
        assert store.all_entities() == []


# ---- opening -----------------------------------------------------------------------------------


def test_open_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = SCHEMAS["car-fleet"]
    (event,) = readings(schema, entities=1, seconds=1)
    monkeypatch.chdir(tmp_path)
    with open_twin_store("sqlite:///rel/twin.sqlite", schema) as store:
        store.apply(batch(schema, [event]), [])
    assert (tmp_path / "rel" / "twin.sqlite").exists()
    with open_twin_store(str(tmp_path / "rel" / "twin.sqlite"), schema) as store:  # a path
        assert store.counts()["events"] == 1
    with open_twin_store("sqlite:///:memory:", schema) as store:
        assert store.all_entities() == []
    with pytest.raises(ConfigError):
        open_twin_store("mysql://x", schema)
    with pytest.raises(ConfigError):
        open_twin_store("sqlite:///", schema)


def test_stores_opening_one_new_sqlite_file_at_once_wait_for_each_other(tmp_path: Path) -> None:
    # Two twins opening a fresh file at the same moment: SQLite refuses the second one's switch to
    # WAL at once ("database is locked", no busy handler); the opener must wait, not fail.
    schema = SCHEMAS["pumps"]

    def open_one(url: str, name: str, start: threading.Barrier, errors: list[Exception]) -> None:
        start.wait()
        try:
            open_twin_store(url, schema, name).close()
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    for trial in range(30):
        url = f"sqlite:///{tmp_path / f'twin{trial}.sqlite'}"
        start = threading.Barrier(4)
        errors: list[Exception] = []
        threads = [
            threading.Thread(target=open_one, args=(url, f"p{i}", start, errors)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, (trial, errors)


def test_read_only_store_creates_and_changes_nothing(tmp_path: Path) -> None:
    schema = SCHEMAS["pumps"]
    path = tmp_path / "odd #?% name" / "twin.sqlite"
    url = f"sqlite:///{path}"
    with pytest.raises(TwinError, match="no twin database"):
        open_twin_store(url, schema, "pumps", read_only=True)
    assert not path.parent.exists()
    with open_twin_store(url, schema, "other"):  # the file exists, the pumps' tables do not
        pass
    before = path.read_bytes()
    with open_twin_store(url, schema, "pumps", read_only=True) as reader:
        assert not reader.ready()
        assert reader.all_entities() == [] and reader.counts()["entities"] == 0
        assert reader.snapshot() == {"entities": [], "readings": [], "anomalies": []}
    assert path.read_bytes() == before  # no table created, nothing written
    with open_twin_store(url, schema, "pumps", read_only=True) as reader:
        with open_twin_store(url, schema, "pumps") as writer:
            evs = readings(schema, entities=2, seconds=3)
            writer.apply(batch(schema, evs), [])
        assert reader.ready()  # tables that appear later are seen
        assert [s.key for s in reader.all_entities()] == ["pump-000", "pump-001"]
        with pytest.raises(TwinError, match="read-only"):
            reader.apply(batch(schema, evs), [])


def test_another_layout_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    schema = SCHEMAS["car-fleet"]
    with open_twin_store(url, schema) as store, store._transaction():
        store._execute(f"UPDATE {store.meta} SET value = '99' WHERE key = 'layout_version'")
    with pytest.raises(TwinError, match="layout version 99"):
        open_twin_store(url, schema)
    with pytest.raises(TwinError, match="layout version 99"):
        open_twin_store(url, schema, read_only=True)


def test_settings_default_url_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = Path("/data")
    assert TwinSettings().database_url(data, "car-fleet") == "sqlite:////data/twin.sqlite"
    assert TwinSettings().database_url(data, "pumps") == "sqlite:////data/twin-pumps.sqlite"
    monkeypatch.setenv("LAKELESS_TWIN__URL", "postgresql://u@h/db")
    monkeypatch.setenv("LAKELESS_TWIN__KEEP_READINGS", "7")
    twin = Settings().twin
    assert twin.database_url(data, "pumps") == "postgresql://u@h/db"
    assert twin.keep_readings == 7


# ---- the HTTP API ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_http_api(tmp_path: Path, name: str) -> None:
    schema = SCHEMAS[name]
    evs = readings(schema, entities=3, seconds=30)
    anoms = perfect_anomalies(schema, evs)
    with open_twin_store(f"sqlite:///{tmp_path / 't.sqlite'}", schema, name) as store:
        store.apply(batch(schema, evs), anoms)
        client = TestClient(make_app(store))
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["pipeline"] == name
        assert (health["entities"], health["events"]) == (3, 90)
        listed = client.get("/entities").json()
        keys = [s.key for s in store.all_entities()]
        assert listed["count"] == 3 and listed["key"] == schema.key
        assert [s["key"] for s in listed["entities"]] == keys
        one = client.get(f"/entities/{keys[1]}", params={"readings": 5}).json()
        assert one["entity"]["events"] == 30
        assert one["entity"]["last_position"] == one["readings"][-1]["position"]
        assert len(one["readings"]) == 5
        assert set(one["readings"][0]["reading"]) == set(schema.field_names)
        assert client.get("/entities/unknown").status_code == 404
        assert client.get(f"/entities/{keys[1]}", params={"readings": -1}).status_code == 422
        opened = client.get("/anomalies/open").json()
        expected = sorted(s.key for s in store.all_entities() if s.episode_open)
        assert expected and sorted(s["key"] for s in opened["entities"]) == expected
        for state in opened["entities"]:
            assert state["episode_open"] and state["last_anomaly"]["model"] == "test-model"
        assert client.get("/cars").json() == listed  # the car fleet's names still answer
        assert client.get(f"/cars/{keys[1]}", params={"readings": 5}).json() == one


def test_http_api_before_the_tables_exist(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    schema = SCHEMAS["pumps"]
    with open_twin_store(url, SCHEMAS["car-fleet"]):
        pass
    with open_twin_store(url, schema, "pumps", read_only=True) as store:
        client = TestClient(make_app(store))
        assert client.get("/entities").json() == {"count": 0, "key": "pump_id", "entities": []}
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/entities/pump-000").status_code == 404


# ---- the step (no broker) ----------------------------------------------------------------------


class _Message:
    """What the step reads of a consumed record."""

    def __init__(self, topic: str, value: bytes | None, offset: int) -> None:
        self._topic, self._value, self._offset = topic, value, offset

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_step_applies_a_batch_and_skips_what_does_not_decode(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema = SCHEMAS[name]
    pipeline = Pipeline.new(name, schema) if name != "car-fleet" else Pipeline.builtin(Settings())
    topics = pipeline.topics
    evs = readings(schema, entities=2, seconds=3)
    anoms = perfect_anomalies(schema, evs, labelled=False)[:2]
    codec, outputs = CleanCodec(schema), OutputCodec(schema)
    good = [codec.encode(e) for e in evs]
    values = [
        (topics.clean, good[0]),
        (topics.clean, b"\x09junk"),
        (topics.anomalies, outputs.encode(anoms[0])),
        (topics.clean, good[1]),
        (topics.anomalies, b"not json"),
        (topics.clean, good[2][:20]),
        (topics.anomalies, None),
        (topics.clean, good[3]),
        (topics.anomalies, outputs.encode(anoms[1])),
    ]
    messages = [_Message(topic, value, i) for i, (topic, value) in enumerate(values)]
    stats = TwinStats()
    with open_twin_store("sqlite:///:memory:", schema, name) as store:
        step = TwinStep(pipeline, store, stats)
        result = step.process(messages)  # type: ignore[arg-type]
        assert result.invalid == 4 and result.outputs == []
        step.committed(result, len(messages))
        assert (stats.readings, stats.anomalies, stats.new_readings, stats.new_anomalies) == (
            3,
            2,
            3,
            2,
        )
        assert store.counts()["events"] == 3 and store.counts()["anomalies"] == 2
        step.committed(step.process(messages), len(messages))  # type: ignore[arg-type]
        assert (stats.readings, stats.new_readings, stats.new_anomalies) == (6, 3, 2)
    for offset in (1, 4, 5, 6):
        topic = values[offset][0]
        assert f"{topic}[0]@{offset}" in caplog.text


def test_step_refuses_clean_records_of_another_schema(caplog: pytest.LogCaptureFixture) -> None:
    pumps = Pipeline.new("pumps", SCHEMAS["pumps"])
    cars = readings(SCHEMAS["car-fleet"], entities=1, seconds=1)
    value = CleanCodec(SCHEMAS["car-fleet"]).encode(cars[0])
    with open_twin_store("sqlite:///:memory:", pumps.schema, "pumps") as store:
        step = TwinStep(pumps, store, TwinStats())
        result = step.process([_Message(pumps.topics.clean, value, 7)])  # type: ignore[list-item]
        assert result.invalid == 1 and store.counts()["events"] == 0
    assert "pumps.clean[0]@7" in caplog.text and "fingerprint" in caplog.text
