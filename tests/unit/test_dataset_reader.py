"""The window reader against a fake consumer: fixed output order whatever the delivery order,
read-ahead pauses, duplicates and gaps, end-of-partition and error handling; rebatching."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from confluent_kafka import KafkaError, TopicPartition

from lakeless.dataset import BadRecordError, DatasetError, ResolvedWindow, rebatch
from lakeless.dataset._reader import WindowReader
from lakeless.examples import car_fleet, example_schema
from lakeless.fleet import Fleet
from lakeless.schema import CleanBatch, CleanCodec, Decoder, EventCodec, concat
from lakeless.testing.events import example_values

CAR = car_fleet()


class FakeMessage:
    def __init__(
        self, partition: int, offset: int, value: bytes | None, error: KafkaError | None = None
    ) -> None:
        self._p, self._o, self._v, self._e = partition, offset, value, error

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def error(self) -> KafkaError | None:
        return self._e


class FakeConsumer:
    """Serves partitions highest first, ``chunk`` records at a time, honouring pause/resume.

    Like librdkafka, pausing drops what was fetched but not delivered and resuming fetches
    again from the application's position; ``redeliver`` re-sends the last few records once
    (a refetch after resume), ``gaps`` are offsets with no record (compaction, markers).
    """

    def __init__(
        self,
        logs: dict[int, dict[int, bytes]],
        *,
        chunk: int = 7,
        redeliver: int = 0,
        eof: bool = True,
        errors: list[FakeMessage] | None = None,
        high: int | None = None,
    ) -> None:
        self.logs = logs
        self.high = high
        self.chunk = chunk
        self.redeliver = redeliver
        self.eof = eof
        self.errors = errors or []
        self.position_of: dict[int, int] = {}
        self.paused: set[int] = set()
        self.pauses = 0
        self.closed = False
        self.eof_sent: set[int] = set()

    def assign(self, tps: list[TopicPartition]) -> None:
        self.position_of = {tp.partition: tp.offset for tp in tps}

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in tps}
        self.pauses += 1

    def resume(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.paused.discard(tp.partition)
            back = self.position_of[tp.partition] - self.redeliver
            self.position_of[tp.partition] = max(back, min(self.logs[tp.partition], default=0))

    def consume(self, num: int, timeout: float) -> list[FakeMessage]:
        if self.errors:
            return [self.errors.pop(0)]
        out: list[FakeMessage] = []
        for p in sorted(self.position_of, reverse=True):
            if p in self.paused:
                continue
            log = self.logs[p]
            high = max(log, default=-1) + 1 if self.high is None else self.high
            pos = self.position_of[p]
            batch = [o for o in sorted(log) if o >= pos][: self.chunk]
            out += [FakeMessage(p, o, log[o]) for o in batch]
            if batch:
                self.position_of[p] = batch[-1] + 1
            elif self.high is not None and pos < high:
                self.position_of[p] = high  # the fetcher skips trailing control batches
            elif self.eof and pos >= high and p not in self.eof_sent:
                self.eof_sent.add(p)
                out.append(FakeMessage(p, high, None, KafkaError(KafkaError._PARTITION_EOF)))
        return out[:num] if out else []

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.position_of[tp.partition]) for tp in tps
        ]

    def close(self) -> None:
        self.closed = True


EVENTS = [CleanCodec(CAR).encode(e) for e in Fleet(120, seed=4, start=0).step().events()]


def logs(
    partitions: int = 3, per: int = 40, gaps: set[int] = frozenset()
) -> dict[int, dict[int, bytes]]:  # type: ignore[assignment]
    return {
        p: {o: EVENTS[(p * per + o) % len(EVENTS)] for o in range(per) if o not in gaps}
        for p in range(partitions)
    }


def read(consumer: FakeConsumer, window: dict[int, tuple[int, int]], **kwargs: Any) -> np.ndarray:
    reader = WindowReader(
        {},
        ResolvedWindow("t", window),
        consumer_factory=lambda _config: consumer,  # type: ignore[arg-type,return-value]
        timeout=kwargs.pop("timeout", 5.0),
        decoder=kwargs.pop("decoder", None) or Decoder(CAR),
        **kwargs,
    )
    chunks = list(reader)
    assert consumer.closed
    return np.concatenate([c.numeric for c in chunks]) if chunks else np.empty(0)


def expected(data: dict[int, dict[int, bytes]], window: dict[int, tuple[int, int]]) -> bytes:
    values = [
        data[p][o] for p, (s, e) in sorted(window.items()) for o in range(s, e) if o in data[p]
    ]
    return Decoder(CAR).decode(values).numeric.tobytes()


def test_output_is_partition_then_offset_order_whatever_the_delivery() -> None:
    data = logs()
    window = {0: (3, 30), 1: (0, 40), 2: (10, 11)}
    got = read(FakeConsumer(data), window)
    assert got.tobytes() == expected(data, window)


def test_readahead_pauses_partitions_ahead_and_resumes_them_in_turn() -> None:
    data = logs(per=60)
    window = {p: (0, 60) for p in range(3)}
    consumer = FakeConsumer(data, chunk=5, redeliver=3)
    from lakeless.dataset import _reader

    original = _reader._MIN_READAHEAD_PER_PARTITION
    _reader._MIN_READAHEAD_PER_PARTITION = 1
    try:
        got = read(consumer, window, readahead_bytes=1)
    finally:
        _reader._MIN_READAHEAD_PER_PARTITION = original
    assert consumer.pauses > 0
    assert got.tobytes() == expected(data, window)  # re-sent records were dropped


def test_gaps_at_the_end_finish_by_eof_or_by_position() -> None:
    data = logs(gaps={38, 39})
    window = {p: (0, 40) for p in range(3)}
    assert read(FakeConsumer(data, high=40), window).tobytes() == expected(data, window)
    # Without end-of-partition events, the consumer position tells.
    got = read(FakeConsumer(data, eof=False, high=40), window)
    assert got.tobytes() == expected(data, window)


def test_empty_window_opens_no_consumer() -> None:
    consumer = FakeConsumer(logs())
    reader = WindowReader(
        {},
        ResolvedWindow("t", {0: (5, 5)}),
        consumer_factory=lambda _c: consumer,  # type: ignore[arg-type,return-value]
        decoder=Decoder(CAR),
    )
    assert list(reader) == [] and not consumer.closed


def test_bad_record_error_names_the_record() -> None:
    data = logs()
    data[1][17] = b"\x07" + bytes(300)
    with pytest.raises(BadRecordError, match=r"t\[1\]@17: .*version byte 7") as info:
        read(FakeConsumer(data), {p: (0, 40) for p in range(3)})
    assert info.value.raw == data[1][17] and info.value.reason == "not_clean_record"
    # A record of another pipeline's schema names both fingerprints.
    pumps = example_schema("pumps")
    data[1][17] = CleanCodec(pumps).encode(EventCodec(pumps).from_dict(example_values(pumps)))
    with pytest.raises(BadRecordError, match=r"t\[1\]@17: .*" + pumps.fingerprint_hex) as info:
        read(FakeConsumer(data), {p: (0, 40) for p in range(3)})
    assert CAR.fingerprint_hex in str(info.value)


def test_deleted_offsets_and_permanent_errors_fail_clearly() -> None:
    gone = FakeMessage(0, -1, None, KafkaError(KafkaError.OFFSET_OUT_OF_RANGE))
    with pytest.raises(DatasetError, match=r"t\[0\]@0 is no longer in the log"):
        read(FakeConsumer(logs(), errors=[gone]), {0: (0, 40)})
    unknown = FakeMessage(0, -1, None, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    with pytest.raises(DatasetError, match=r"reading t\[0\] failed"):
        read(FakeConsumer(logs(), errors=[unknown]), {0: (0, 40)})
    transient = FakeMessage(0, -1, None, KafkaError(KafkaError._TRANSPORT))
    data = logs()
    assert len(read(FakeConsumer(data, errors=[transient]), {0: (0, 40)})) == 40


def test_stalled_read_times_out_naming_the_partition() -> None:
    data = logs()
    with pytest.raises(DatasetError, match=r"no records for 0.3s at t\[2\]@40"):
        read(FakeConsumer(data, eof=False), {2: (0, 45)}, timeout=0.3)


def test_reader_decodes_with_the_pipelines_schema() -> None:
    pumps = example_schema("pumps")
    codec, events = CleanCodec(pumps), EventCodec(pumps)
    data = {
        0: {
            o: codec.encode(events.from_dict(example_values(pumps, timestamp=o, flow_rate=o)))
            for o in range(30)
        }
    }
    got = read(FakeConsumer(data), {0: (5, 25)}, decoder=Decoder(pumps))
    assert got["timestamp"].tolist() == list(range(5, 25))
    assert got["flow_rate"].tolist() == [float(o) for o in range(5, 25)]


def test_rebatch_boundaries_do_not_depend_on_chunking() -> None:
    whole = Decoder(CAR).decode(EVENTS[:100])
    pieces = [whole.take(i, i + 13) for i in range(0, 100, 13)]
    a = list(rebatch([whole], 30))
    b = list(rebatch(pieces, 30))
    assert [len(x) for x in a] == [len(x) for x in b] == [30, 30, 30, 10]
    for x, y in zip(a, b, strict=True):
        assert x.numeric.tobytes() == y.numeric.tobytes() and x.key == y.key
    assert concat(b).label == whole.label
    assert list(rebatch([], 5)) == []
    with pytest.raises(ValueError):
        list(rebatch([whole], 0))
    assert isinstance(a[0], CleanBatch)
