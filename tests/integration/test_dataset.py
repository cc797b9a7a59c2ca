"""lakeless.dataset against a real broker: windows, adapters, caching, replay, tiering, follow."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pytest

from lakeless.config import KafkaSettings
from lakeless.dataset import BadRecordError, KafkaDataset, ResolvedWindow, Window
from lakeless.examples import car_fleet, example_schema
from lakeless.fleet import Fleet
from lakeless.kafka import make_producer
from lakeless.lifecycle import RunLimits
from lakeless.pipeline import Pipeline
from lakeless.schema import CleanCodec, EventCodec
from lakeless.stack import list_offsets
from lakeless.testing.events import example_values
from lakeless.testing.models import FEATURES
from lakeless.testing.waiting import wait_for

SensorEvent = Any  # an event of the car schema's generated type
CAR = car_fleet()
CODEC, EVENTS = CleanCodec(CAR), EventCodec(CAR)

PARTITIONS = 3
PER_PARTITION = 200
STEP_MS = 1000
#: Recent enough that the broker's default retention never deletes the test data.
BASE_MS = (int(time.time()) - 3600) * 1000


def make_events(count: int, seed: int = 7) -> list[SensorEvent]:
    fleet = Fleet(50, seed=seed, start=BASE_MS, failure_rate=20.0, ramp=5.0)
    events: list[SensorEvent] = []
    while len(events) < count:
        events += fleet.step().events()
    return events[:count]


def produce_clean(
    kafka: KafkaSettings,
    topic: str,
    rows: list[tuple[int, int, SensorEvent | bytes]],
    codec: CleanCodec = CODEC,
) -> None:
    """Produce ``(partition, timestamp, event)`` rows as clean records, keyed by entity."""
    producer = make_producer(kafka, linger_ms=20)
    errors: list[object] = []
    key_field = codec.schema.key
    for partition, ts, event in rows:
        value = event if isinstance(event, bytes) else codec.encode(event)
        key = b"bad" if isinstance(event, bytes) else getattr(event, key_field).encode()
        while True:
            try:
                producer.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    timestamp=ts,
                    on_delivery=lambda err, _msg: err and errors.append(err),
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0
    assert not errors


def known_rows() -> list[tuple[int, int, SensorEvent]]:
    """PER_PARTITION records per partition; record i of every partition is stamped i seconds
    after BASE_MS, so a time window maps to the same offsets in every partition."""
    events = make_events(PARTITIONS * PER_PARTITION)
    rows = []
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            ts = BASE_MS + i * STEP_MS
            rows.append((p, ts, msgspec.structs.replace(events[p * PER_PARTITION + i], ts=ts)))
    return rows


@pytest.fixture(scope="module")
def known_topic(kafka: KafkaSettings) -> tuple[str, list[tuple[int, int, SensorEvent]]]:
    from lakeless.kafka import TopicSpec, create_topics

    name = f"test-dataset-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    create_topics(kafka, [TopicSpec(name, PARTITIONS, 1, {"retention.ms": "-1"})])
    rows = known_rows()
    produce_clean(kafka, name, rows)
    return name, rows


def expected(
    rows: list[tuple[int, int, SensorEvent]], start: int, end: int
) -> list[dict[str, Any]]:
    """Rows with offsets in [start, end) of every partition, in partition then offset order."""
    out = []
    for p in range(PARTITIONS):
        out += [EVENTS.to_dict(e) for q, _, e in rows if q == p][start:end]
    return out


def as_events(ds: KafkaDataset) -> list[dict[str, Any]]:
    """Every record of the dataset as an event dict (schema field order, Python values)."""
    batch = ds.to_numpy()
    columns = {name: batch.column(name) for name in CAR.field_names}
    return [
        {
            name: values[i] if isinstance(values, list) else values[i].item()
            for name, values in columns.items()
        }
        for i in range(len(batch))
    ]


def test_between_resolves_to_exact_offsets_and_reads_exactly_those_records(
    kafka: KafkaSettings, known_topic: tuple[str, list[tuple[int, int, SensorEvent]]]
) -> None:
    topic, rows = known_topic
    window = Window.between(BASE_MS + 20 * STEP_MS, BASE_MS + 50 * STEP_MS)
    ds = KafkaDataset(kafka, topic, window, batch_size=17)
    assert dict(ds.window.partitions) == {p: (20, 50) for p in range(PARTITIONS)}
    assert ds.window.num_records == 90
    assert (ds.window.start_ms, ds.window.end_ms) == (BASE_MS + 20_000, BASE_MS + 50_000)
    assert as_events(ds) == expected(rows, 20, 50)
    assert [len(b) for b in ds.batches()] == [17] * 5 + [5]

    # A time between two records starts at the next one; an end after the last record, or no
    # end at all, is the high watermark.
    late = KafkaDataset(kafka, topic, Window.between(BASE_MS + 190_500, BASE_MS + 10**9))
    assert dict(late.window.partitions) == {p: (191, PER_PARTITION) for p in range(PARTITIONS)}
    open_end = KafkaDataset(kafka, topic, Window.between(BASE_MS + 190_500))
    assert open_end.window.partitions == late.window.partitions


def test_adapters_agree_with_numpy(
    kafka: KafkaSettings, known_topic: tuple[str, list[tuple[int, int, SensorEvent]]]
) -> None:
    topic, rows = known_topic
    ds = KafkaDataset(kafka, topic, Window.all(), batch_size=64)
    batch = ds.to_numpy()
    assert len(batch) == len(rows)
    x = ds.features()
    assert x.dtype == np.float32 and x.shape == (len(rows), len(FEATURES))
    assert np.array_equal(x, batch.features(np.float32))

    frame = ds.to_pandas()
    assert list(frame.columns) == list(CAR.field_names)
    assert frame["car_id"].tolist() == batch.key
    labels = frame["failure"].astype(object)
    assert labels.where(labels.notna(), None).tolist() == batch.label  # pandas: None -> NaN
    assert np.array_equal(frame[list(FEATURES)].to_numpy(np.float32), x)
    assert frame["ts"].tolist() == batch.numeric["ts"].tolist()

    unshuffled = ds.to_tf_dataset(batch_size=50, shuffle=False)
    pairs = list(unshuffled.as_numpy_iterator())
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert np.array_equal(np.concatenate([a for a, _ in pairs]), x)
    shuffled = ds.to_tf_dataset(batch_size=50, pairs=False, seed=1)
    epoch1 = np.concatenate(list(shuffled.as_numpy_iterator()))
    epoch2 = np.concatenate(list(shuffled.as_numpy_iterator()))
    assert not np.array_equal(epoch1, x) and not np.array_equal(epoch1, epoch2)
    for epoch in (epoch1, epoch2):  # a permutation of the same rows
        assert np.array_equal(np.unique(epoch, axis=0), np.unique(x, axis=0))
    again = ds.to_tf_dataset(batch_size=50, pairs=False, seed=1)  # same seed, same epochs
    assert np.array_equal(np.concatenate(list(again.as_numpy_iterator())), epoch1)
    assert ds.kafka_reads == 1  # everything above came from the cache


def test_second_pass_is_cached_and_uncached_rereads_identically(
    kafka: KafkaSettings, known_topic: tuple[str, list[tuple[int, int, SensorEvent]]]
) -> None:
    topic, _ = known_topic
    cached = KafkaDataset(kafka, topic, batch_size=100)
    first = [b.numeric.tobytes() for b in cached]
    assert cached.kafka_reads == 1
    second = [b.numeric.tobytes() for b in cached]
    assert cached.kafka_reads == 1 and second == first

    fresh = KafkaDataset(kafka, topic, cached.window, batch_size=100, cache=False)
    assert [b.numeric.tobytes() for b in fresh] == first
    assert [b.numeric.tobytes() for b in fresh] == first
    assert fresh.kafka_reads == 2

    # An abandoned first pass caches nothing.
    partial = KafkaDataset(kafka, topic, cached.window, batch_size=100)
    next(iter(partial))
    assert [b.numeric.tobytes() for b in partial] == first


def test_replaying_the_lineage_gives_byte_identical_inputs(
    kafka: KafkaSettings, known_topic: tuple[str, list[tuple[int, int, SensorEvent]]]
) -> None:
    topic, _ = known_topic
    ds = KafkaDataset(kafka, topic, Window.between(BASE_MS + 5_000, BASE_MS + 150_000))
    lineage = json.loads(json.dumps(ds.window.to_dict()))
    replay = KafkaDataset(kafka, topic, ResolvedWindow.from_dict(lineage), cache=False)
    assert replay.window == ds.window
    a, b = ds.features(), replay.features()
    assert a.tobytes() == b.tobytes()
    assert ds.to_numpy().numeric.tobytes() == replay.to_numpy().numeric.tobytes()


def test_streaming_with_small_readahead_reads_the_same(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=4, **{"retention.ms": "-1"})
    events = make_events(40_000, seed=3)
    produce_clean(kafka, topic, [(i % 4, BASE_MS + i, e) for i, e in enumerate(events)])
    whole = KafkaDataset(kafka, topic, cache=False).to_numpy().numeric
    assert whole["ts"].tolist() == [e.ts for p in range(4) for e in events[p::4]]
    tight = KafkaDataset(kafka, topic, cache=False, readahead_bytes=1, batch_size=1000)
    streamed = np.concatenate([b.numeric for b in tight])
    assert streamed.tobytes() == whole.tobytes()


def test_offset_windows_and_last(
    kafka: KafkaSettings, known_topic: tuple[str, list[tuple[int, int, SensorEvent]]]
) -> None:
    topic, rows = known_topic
    ds = KafkaDataset(kafka, topic, Window.offsets({1: (10, 13), 2: (195, None)}))
    assert dict(ds.window.partitions) == {1: (10, 13), 2: (195, PER_PARTITION)}
    part1 = [e for q, _, e in rows if q == 1][10:13]
    part2 = [e for q, _, e in rows if q == 2][195:]
    assert as_events(ds) == [EVENTS.to_dict(e) for e in part1 + part2]

    last = KafkaDataset(kafka, topic, "2h")
    assert last.window.num_records == PARTITIONS * PER_PARTITION
    assert last.window.end_ms is not None and last.window.start_ms is not None
    assert last.window.end_ms - last.window.start_ms == 7_200_000
    none = KafkaDataset(kafka, topic, Window.last("1s"))
    assert none.window.num_records == 0 and len(none.to_numpy()) == 0
    assert none.features().shape == (0, len(FEATURES))


def test_bad_record_names_topic_partition_offset(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2, **{"retention.ms": "-1"})
    events = make_events(10)
    rows: list[tuple[int, int, SensorEvent | bytes]] = [(0, BASE_MS, e) for e in events]
    raw_json = EVENTS.encode(events[0])  # a raw record where a clean one belongs
    rows.insert(6, (0, BASE_MS, raw_json))
    produce_clean(kafka, topic, rows)
    with pytest.raises(BadRecordError, match=rf"{topic}\[0\]@6: .*version byte 123") as info:
        KafkaDataset(kafka, topic).to_numpy()
    assert info.value.raw == raw_json
    assert (info.value.partition, info.value.offset) == (0, 6)
    # The records before it are readable.
    assert len(KafkaDataset(kafka, topic, Window.offsets({0: (0, 6)})).to_numpy()) == 6


def test_follow_yields_new_records_until_the_limit(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2, **{"retention.ms": "-1"})
    events = make_events(300, seed=5)
    produce_clean(kafka, topic, [(i % 2, BASE_MS + i, e) for i, e in enumerate(events[:100])])
    ds = KafkaDataset(
        kafka, topic, follow=True, limits=RunLimits(count=250, timeout=60), batch_size=30
    )
    assert ds.window.num_records == 100 and not ds.cached
    later = [(i % 2, BASE_MS + i, e) for i, e in enumerate(events[100:])]
    producer = threading.Timer(1.0, produce_clean, args=(kafka, topic, later))
    producer.start()
    try:
        got = np.concatenate([b.numeric for b in ds])
    finally:
        producer.join()
    assert len(got) == 250
    window_part = got[:100]
    assert sorted(window_part["seq"].tolist()) == sorted(e.seq for e in events[:100])
    idle = KafkaDataset(kafka, topic, follow=True, limits=RunLimits(until_idle=1.0))
    assert sum(len(b) for b in idle) == 300


def test_torch_adapter_matches_features(
    kafka: KafkaSettings, known_topic: tuple[str, list[tuple[int, int, SensorEvent]]]
) -> None:
    torch = pytest.importorskip("torch")
    topic, _ = known_topic
    ds = KafkaDataset(kafka, topic)
    loader = torch.utils.data.DataLoader(ds.to_torch(64, shuffle=False), batch_size=None)
    got = torch.cat(list(loader)).numpy()
    assert np.array_equal(got, ds.features())


@pytest.mark.slow
def test_window_reaching_into_the_remote_tier_reads_the_same(
    tiered_kafka: KafkaSettings, new_tiered_topic: Callable[..., str]
) -> None:
    kafka = tiered_kafka  # each remote tier in turn
    topic = new_tiered_topic(
        partitions=1,
        **{
            "remote.storage.enable": "true",
            "retention.ms": "-1",
            "local.retention.ms": "1000",
            "segment.bytes": str(1024 * 1024),
            "file.delete.delay.ms": "1000",
        },
    )
    # ~4.5 MiB of sensor-clean records (lz4 compresses them, so produce plenty): 4+ segments.
    events = make_events(60_000, seed=11)
    produce_clean(kafka, topic, [(0, BASE_MS + i * 10, e) for i, e in enumerate(events)])
    window = Window.between(BASE_MS + 1_000, BASE_MS + 590_000)
    before = KafkaDataset(kafka, topic, window, cache=False)
    first = before.to_numpy()
    assert len(first) == 58_900

    wait_for(
        lambda: list_offsets(kafka.bootstrap_servers, topic, "-4")[0] > 0,
        120,
        "a segment to leave the broker's disk",
        interval=2,  # each poll starts a JVM (GetOffsetShell): leave the cores to the broker
    )

    after = KafkaDataset(kafka, topic, window, cache=False)
    assert after.window.partitions == before.window.partitions
    again = after.to_numpy()
    assert again.numeric.tobytes() == first.numeric.tobytes()
    assert again.key == first.key and again.label == first.label


def test_a_pipelines_own_schema_decodes_its_topic(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    pumps = example_schema("pumps")
    codec, events = CleanCodec(pumps), EventCodec(pumps)
    topic = new_topic(partitions=2, **{"retention.ms": "-1"})
    rows = [
        (
            i % 2,
            BASE_MS + i,
            events.from_dict(
                example_values(pumps, pump_id=f"p-{i % 3}", timestamp=BASE_MS + i, flow_rate=i)
            ),
        )
        for i in range(40)
    ]
    produce_clean(kafka, topic, rows, codec)
    pipeline = Pipeline.new("pumps-test", pumps)
    ds = KafkaDataset(kafka, topic, pipeline=pipeline)
    assert ds.feature_names == pumps.feature_names
    frame = ds.to_pandas()
    assert list(frame.columns) == list(pumps.field_names)
    assert frame["flow_rate"].tolist() == [float(i) for p in (0, 1) for i in range(p, 40, 2)]
    assert frame["timestamp"].tolist() == [BASE_MS + i for p in (0, 1) for i in range(p, 40, 2)]
    assert ds.features().shape == (40, len(pumps.feature_names))
    # The car fleet's reader refuses them, naming both fingerprints.
    with pytest.raises(BadRecordError, match=pumps.fingerprint_hex) as info:
        KafkaDataset(kafka, topic, pipeline=Pipeline.new("cars-test", CAR)).to_numpy()
    assert CAR.fingerprint_hex in str(info.value)
