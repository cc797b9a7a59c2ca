"""What ``bench pipeline`` watches: topic end offsets, the stages' committed offsets, latencies.

`OffsetWatch` samples, once a second, the end offsets of the pipeline's topics and the offsets
each stage's consumer group committed, so that a stage's rate is the growth of what it
committed and its lag is what its input topic holds beyond that. `read_latencies` reads an
output topic afterwards: latency = the record's LogAppendTime (the broker's clock when the
output was appended) minus the event time in its payload (the device's clock when it sent
the reading); both clocks are this machine's. `percentiles` and the event-time reader are
`lakeless.bench._latency`'s, shared with ``bench score``'s live measurement.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

from lakeless.bench._latency import json_event_time, percentiles
from lakeless.config import KafkaSettings
from lakeless.kafka import make_consumer

__all__ = ["OffsetSample", "OffsetWatch", "percentiles", "read_latencies"]


@dataclass(frozen=True)
class OffsetSample:
    """One look at the pipeline: wall time, end offsets per topic, committed per group."""

    at: float
    ends: dict[str, int]
    committed: dict[str, dict[str, int]]


@dataclass
class OffsetWatch:
    """Samples end offsets of ``topics`` and the committed offsets of ``groups`` every second.

    Args:
        kafka: the cluster.
        topics: topic -> partitions.
        groups: group id -> the topics it consumes.
        every: seconds between two samples.
    """

    kafka: KafkaSettings
    topics: dict[str, int]
    groups: dict[str, tuple[str, ...]]
    every: float = 1.0
    samples: list[OffsetSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ends = make_consumer(self.kafka, f"lakeless-bench-watch-{uuid.uuid4().hex[:8]}")
        # A consumer of a group's id reads its committed offsets without joining it.
        self._groups = {group: make_consumer(self.kafka, group) for group in self.groups}

    def sample(self) -> OffsetSample:
        """Look now."""
        ends = {}
        for topic, partitions in self.topics.items():
            total = 0
            for p in range(partitions):
                _low, high = self._ends.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += max(0, high)
            ends[topic] = total
        committed: dict[str, dict[str, int]] = {}
        for group, consumer in self._groups.items():
            tps = [
                TopicPartition(topic, p)
                for topic in self.groups[group]
                for p in range(self.topics[topic])
            ]
            per_topic = dict.fromkeys(self.groups[group], 0)
            for tp in consumer.committed(tps, timeout=10):
                per_topic[tp.topic] += max(0, tp.offset)
            committed[group] = per_topic
        return OffsetSample(time.time(), ends, committed)

    def start(self) -> OffsetWatch:
        """Sample on a thread until `stop`."""
        self._thread = threading.Thread(target=self._run, name="offset-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            sample = self.sample()
            with self._lock:
                self.samples.append(sample)
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def near(self, at: float) -> OffsetSample:
        """The sample taken closest to wall time ``at``."""
        with self._lock:
            return min(self.samples, key=lambda s: abs(s.at - at))

    def stop(self) -> None:
        """Stop sampling and release the consumers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._ends.close()
        for consumer in self._groups.values():
            consumer.close()


def read_latencies(
    kafka: KafkaSettings,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    window: tuple[float, float],
    time_field: str = "ts",
) -> tuple[list[float], int]:
    """Latencies (ms) of the records in ``[start, end)`` whose event time is in ``window``.

    Returns the latencies and how many records were read that were not stamped with
    LogAppendTime (they are left out: their timestamp is the producer's, not the broker's).
    """
    event_time = json_event_time(time_field)
    lo, hi = window[0] * 1000, window[1] * 1000
    consumer = make_consumer(kafka, f"lakeless-bench-latency-{uuid.uuid4().hex[:8]}")
    assigned = [TopicPartition(topic, p, o) for p, o in start.items() if end.get(p, 0) > o]
    latencies: list[float] = []
    other_stamps = 0
    if not assigned:
        consumer.close()
        return latencies, 0
    consumer.assign(assigned)
    left = {p: end[p] - o for p, o in start.items() if end.get(p, 0) > o}
    deadline = time.monotonic() + 120
    try:
        while any(n > 0 for n in left.values()) and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is not None:
                    continue
                p = message.partition()
                if message.offset() >= end[p]:
                    continue
                left[p] -= 1
                kind, stamp = message.timestamp()
                if kind != TIMESTAMP_LOG_APPEND_TIME:
                    other_stamps += 1
                    continue
                event_ms = event_time(message.value())
                if event_ms is not None and lo <= event_ms < hi:
                    latencies.append(float(stamp - event_ms))
    finally:
        consumer.close()
    return latencies, other_stamps
