"""Unit tests of the twin: the store's semantics on SQLite, the HTTP API, settings, decoding.

The store's PostgreSQL implementation runs the same checks in ``tests/integration/test_twin.py``
(it needs a server); ``LAKELESS_TEST_POSTGRES_URL`` runs them here too.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from lakeless.config import Settings
from lakeless.errors import ConfigError
from lakeless.fleet import fleet_events
from lakeless.schema import SensorEvent, decode_clean_batch, encode_clean
from lakeless.score import Anomaly, TopFeature
from lakeless.twin import TwinError, TwinSettings, TwinStore, make_app
from lakeless.twin._stage import _decode_readings

T0 = 1_700_000_000_000


def events(cars: int = 4, duration: float = 60, failure_rate: float = 60.0) -> list[SensorEvent]:
    return list(
        fleet_events(cars=cars, seed=5, duration=duration, failure_rate=failure_rate, start=T0)
    )


def anomalies_for(evs: list[SensorEvent], version: int = 1) -> list[Anomaly]:
    """An anomaly for every labelled event (as a perfect detector would report)."""
    return [
        Anomaly(
            car_id=e.car_id,
            ts=e.ts,
            seq=e.seq,
            score=5.0 + e.seq / 1000,
            threshold=1.0,
            model="car-ae",
            model_version=version,
            top_features=[TopFeature("coolant_temp", e.coolant_temp, 4.0)],
            failure=e.failure,
        )
        for e in evs
        if e.failure is not None
    ]


def batch(evs: list[SensorEvent]) -> Any:
    return decode_clean_batch([encode_clean(e) for e in evs])


def apply_in_batches(
    store: TwinStore, evs: list[SensorEvent], anoms: list[Anomaly], size: int, seed: int | None
) -> None:
    """Apply events and anomalies in chunks of ``size`` (shuffled when ``seed`` is given)."""
    records: list[SensorEvent | Anomaly] = [*evs, *anoms]
    if seed is not None:
        random.Random(seed).shuffle(records)
    for start in range(0, len(records), size):
        chunk = records[start : start + size]
        store.apply(
            batch([r for r in chunk if isinstance(r, SensorEvent)]),
            [r for r in chunk if isinstance(r, Anomaly)],
        )


@pytest.fixture(
    params=["sqlite", *(["postgresql"] if os.environ.get("LAKELESS_TEST_POSTGRES_URL") else [])]
)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Factory: ``open_store(**options)`` -> a fresh, empty store of the parametrized kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    else:
        url = os.environ["LAKELESS_TEST_POSTGRES_URL"]
    opened: list[TwinStore] = []

    def make(**options: Any) -> TwinStore:
        store = TwinStore.open(url, **options)
        if request.param == "postgresql" and not opened:
            with store._transaction():
                for table in ("cars", "readings", "anomalies"):
                    store._execute(f"DELETE FROM {table}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# ---- the latest state ------------------------------------------------------------------------


def test_latest_reading_and_counts(open_store: Any) -> None:
    store = open_store()
    evs = events(cars=3, duration=10, failure_rate=0)
    result = store.apply(batch(evs), [])
    assert (result.cars, result.new_readings, result.new_anomalies) == (3, 30, 0)
    fleet = store.fleet()
    assert [c.car_id for c in fleet] == ["car-00000", "car-00001", "car-00002"]
    last = {e.car_id: e for e in evs}  # the last event of every car
    for car in fleet:
        assert car.last_seq == 9 and car.events == 10 and car.anomalies == 0
        assert car.last_ts == last[car.car_id].ts
        assert car.model == last[car.car_id].model
        assert car.features is not None
        assert car.features["coolant_temp"] == last[car.car_id].coolant_temp
        assert not car.episode_open and car.last_anomaly is None
    readings = store.recent_readings("car-00001", limit=4)
    assert [r.seq for r in readings] == [6, 7, 8, 9]
    assert store.car("nope") is None
    assert store.counts() == {"cars": 3, "open_episodes": 0, "events": 30, "anomalies": 0}


def test_replay_leaves_the_same_state(open_store: Any) -> None:
    store = open_store(keep_readings=25, keep_anomalies=10)
    evs = events(cars=4, duration=60)
    anoms = anomalies_for(evs)
    assert len(anoms) > 20  # enough to prune anomalies too
    apply_in_batches(store, evs, anoms, size=97, seed=None)
    once = store.snapshot()
    apply_in_batches(store, evs, anoms, size=97, seed=None)
    assert store.snapshot() == once
    # Replayed in other batches, in another order: still nothing changes.
    apply_in_batches(store, evs, anoms, size=31, seed=1)
    assert store.snapshot() == once
    for car in store.fleet():
        assert car.events == 60
        assert car.anomalies == sum(a.car_id == car.car_id for a in anoms)
    assert sum(1 for r in once["readings"] if r["car_id"] == "car-00000") == 25


def test_out_of_order_within_the_window_gives_the_in_order_state(open_store: Any) -> None:
    evs = events(cars=3, duration=40)
    anoms = anomalies_for(evs)
    ordered = open_store()
    apply_in_batches(ordered, evs, anoms, size=50, seed=None)
    expected = ordered.snapshot()
    ordered.close()
    for seed in (2, 3):
        shuffled = open_store()
        with shuffled._transaction():
            for table in ("cars", "readings", "anomalies"):
                shuffled._execute(f"DELETE FROM {table}")
        apply_in_batches(shuffled, evs, anoms, size=7, seed=seed)
        assert shuffled.snapshot() == expected


def test_an_older_event_never_overwrites_a_newer_one(open_store: Any) -> None:
    store = open_store()
    evs = events(cars=1, duration=5, failure_rate=0)
    store.apply(batch([evs[4]]), [])
    store.apply(batch([evs[1], evs[2]]), [])
    car = store.car("car-00000")
    assert car is not None
    assert (car.last_seq, car.last_ts, car.events) == (4, evs[4].ts, 3)
    assert car.features is not None and car.features["speed"] == evs[4].speed


def test_pruning_keeps_counts_exact_and_ignores_events_below_the_window(open_store: Any) -> None:
    store = open_store(keep_readings=5)
    evs = events(cars=1, duration=12, failure_rate=0)
    store.apply(batch(evs[2:]), [])  # seq 2..11: keeps 7..11, floor 7
    snap = store.snapshot()
    assert [r["seq"] for r in snap["readings"]] == [7, 8, 9, 10, 11]
    car = store.car("car-00000")
    assert car is not None and car.events == 10
    # seq 0 and 1 come late, below the retained window: a replay cannot be told apart, so
    # they are ignored rather than counted twice on every replay.
    assert store.apply(batch(evs[:2]), []).new_readings == 0
    assert store.snapshot() == snap
    store.apply(batch(evs), [])
    assert store.snapshot() == snap


def test_anomalies_last_one_counts_and_versions(open_store: Any) -> None:
    store = open_store()
    evs = events(cars=1, duration=5, failure_rate=0)
    store.apply(batch(evs), [])

    def anomaly(seq: int, version: int) -> Anomaly:
        e = evs[seq]
        return Anomaly(
            car_id=e.car_id, ts=e.ts, seq=seq, score=float(10 * seq + version), threshold=1.0,
            model="car-ae", model_version=version, top_features=[],
        )  # fmt: skip

    store.apply(batch([]), [anomaly(3, 1), anomaly(1, 1)])
    store.apply(batch([]), [anomaly(3, 2), anomaly(2, 2)])  # a new version re-scored seq 3
    car = store.car("car-00000")
    assert car is not None and car.last_anomaly is not None
    assert car.anomalies == 4
    assert (car.last_anomaly.seq, car.last_anomaly.model_version) == (3, 2)
    assert car.last_anomaly.score == 32.0
    rows = store.recent_anomalies("car-00000")
    assert [(a.seq, a.model_version) for a in rows] == [(1, 1), (2, 2), (3, 1), (3, 2)]
    store.apply(batch([]), [anomaly(3, 1)])  # replayed: no change
    assert store.car("car-00000") == car


def _reading(seq: int, ts: int, car_id: str = "car-1") -> SensorEvent:
    base = events(cars=1, duration=1, failure_rate=0)[0]
    return msgspec.structs.replace(base, car_id=car_id, seq=seq, ts=ts)


def _anomaly_at(seq: int, ts: int, car_id: str = "car-1") -> Anomaly:
    return Anomaly(
        car_id=car_id, ts=ts, seq=seq, score=3.0, threshold=1.0, model="m", model_version=1,
        top_features=[],
    )  # fmt: skip


def test_failure_episodes_follow_event_time(open_store: Any) -> None:
    store = open_store(episode_gap_ms=60_000)
    s = 1000  # ms
    # Anomalies at 0, 30 and 80 s form one episode (gaps <= 60 s); 200 s starts another.
    store.apply(batch([_reading(i, i * s) for i in (0, 30, 80)]), [])
    store.apply(batch([]), [_anomaly_at(i, i * s) for i in (0, 30, 80)])
    car = store.car("car-1")
    assert car is not None
    assert (car.episode_open, car.episode_since, car.episode_anomalies) == (True, 0, 3)
    assert [c.car_id for c in store.open_anomalies()] == ["car-1"]
    # A reading 61 s after the last anomaly closes the episode (event time, not wall clock).
    store.apply(batch([_reading(141, 141 * s)]), [])
    car = store.car("car-1")
    assert car is not None and not car.episode_open and car.episode_since == 0
    assert store.open_anomalies() == []
    store.apply(batch([_reading(200, 200 * s)]), [_anomaly_at(200, 200 * s)])
    car = store.car("car-1")
    assert car is not None
    assert (car.episode_open, car.episode_since, car.episode_anomalies) == (True, 200 * s, 1)


def test_an_anomaly_before_its_reading_creates_the_car(open_store: Any) -> None:
    store = open_store()
    store.apply(batch([]), [_anomaly_at(5, T0, car_id="car-9")])
    car = store.car("car-9")
    assert car is not None
    assert (car.model, car.last_seq, car.features, car.events) == (None, None, None, 0)
    assert car.episode_open and car.anomalies == 1
    store.apply(batch([_reading(5, T0, car_id="car-9")]), [])
    car = store.car("car-9")
    assert car is not None and car.last_seq == 5 and car.episode_open


def test_a_failed_batch_changes_nothing(open_store: Any) -> None:
    store = open_store()
    store.apply(batch([_reading(1, T0)]), [])
    before = store.snapshot()
    bad = _anomaly_at(2, T0)
    bad = msgspec.structs.replace(bad, score=[1.0])  # type: ignore[arg-type]  # cannot be bound
    with pytest.raises(TwinError):
        store.apply(batch([_reading(2, T0 + 1000)]), [bad, _anomaly_at(3, T0)])
    assert store.snapshot() == before


# ---- opening -----------------------------------------------------------------------------------


def test_open_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with TwinStore.open("sqlite:///rel/twin.sqlite") as store:
        store.apply(batch([_reading(1, T0)]), [])
    assert (tmp_path / "rel" / "twin.sqlite").exists()
    with TwinStore.open(str(tmp_path / "rel" / "twin.sqlite")) as store:  # a plain path
        assert store.counts()["events"] == 1
    with TwinStore.open("sqlite:///:memory:") as store:
        assert store.fleet() == []
    with pytest.raises(ConfigError):
        TwinStore.open("mysql://x")
    with pytest.raises(ConfigError):
        TwinStore.open("sqlite:///")


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twin.sqlite'}"
    with TwinStore.open(url) as store, store._transaction():
        store._execute("UPDATE twin_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(TwinError, match="schema version 99"):
        TwinStore.open(url)


def test_settings_default_url_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=Path("/data"))
    assert TwinSettings().database_url(settings) == "sqlite:////data/twin.sqlite"
    monkeypatch.setenv("LAKELESS_TWIN__URL", "postgresql://u@h/db")
    monkeypatch.setenv("LAKELESS_TWIN__KEEP_READINGS", "7")
    twin = TwinSettings()
    assert twin.database_url(settings) == "postgresql://u@h/db"
    assert twin.keep_readings == 7


# ---- the HTTP API ------------------------------------------------------------------------------


def test_http_api(tmp_path: Path) -> None:
    evs = events(cars=3, duration=30)
    anoms = anomalies_for(evs)
    with TwinStore.open(f"sqlite:///{tmp_path / 't.sqlite'}") as store:
        store.apply(batch(evs), anoms)
        client = TestClient(make_app(store))
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["cars"] == 3 and health["events"] == 90
        fleet = client.get("/cars").json()
        assert fleet["count"] == 3
        assert [c["car_id"] for c in fleet["cars"]] == ["car-00000", "car-00001", "car-00002"]
        one = client.get("/cars/car-00001", params={"readings": 5}).json()
        assert one["car"]["last_seq"] == 29 and one["car"]["events"] == 30
        assert [r["seq"] for r in one["readings"]] == [25, 26, 27, 28, 29]
        assert set(one["readings"][0]["features"]) >= {"coolant_temp", "speed"}
        assert client.get("/cars/unknown").status_code == 404
        assert client.get("/cars/car-00001", params={"readings": -1}).status_code == 422
        opened = client.get("/anomalies/open").json()
        expected = sorted(c.car_id for c in store.fleet() if c.episode_open)
        assert sorted(c["car_id"] for c in opened["cars"]) == expected
        assert opened["count"] == len(expected)
        for car in opened["cars"]:
            assert car["episode_open"] and car["last_anomaly"]["model"] == "car-ae"


# ---- decoding ----------------------------------------------------------------------------------


class _Message:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "sensor-clean"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_bad_clean_records_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    good = [encode_clean(e) for e in events(cars=2, duration=2, failure_rate=0)]
    values = [good[0], b"\x09junk", good[1], good[2][:40], good[3]]
    decoded, bad = _decode_readings([_Message(v, i) for i, v in enumerate(values)])  # type: ignore[misc]
    assert bad == 2 and len(decoded) == 3
    assert "sensor-clean[0]@1" in caplog.text and "sensor-clean[0]@3" in caplog.text
