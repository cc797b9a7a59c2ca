"""What the demo shows in the terminal.

Per-stage rates come from topic end offsets; detection quality is measured against the
simulator's labels.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import TopicPartition

from lakeless.config import Settings
from lakeless.kafka import make_consumer
from lakeless.model.evaluate import Evaluation, evaluate
from lakeless.pipeline import Pipeline
from lakeless.schema.outputs import OutputCodec


class TopicRates:
    """Events per second written to each topic, from the growth of its end offsets."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self._consumer = make_consumer(settings.kafka, group_id=f"lakeless-demo-{uuid.uuid4().hex}")
        self.topics = topics
        self._last: dict[str, int] = {}
        self._last_at = time.monotonic()

    def totals(self) -> dict[str, int]:
        """Records ever written per topic (sum of end offsets)."""
        out = {}
        for topic in self.topics:
            partitions = self._consumer.list_topics(topic, timeout=5).topics[topic].partitions
            out[topic] = sum(
                self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in partitions
            )
        return out

    def rates(self) -> tuple[dict[str, int], dict[str, float]]:
        """Totals and events/s since the previous call."""
        now, totals = time.monotonic(), self.totals()
        elapsed = max(1e-6, now - self._last_at)
        rates = {t: (n - self._last.get(t, n)) / elapsed for t, n in totals.items()}
        self._last, self._last_at = totals, now
        return totals, rates

    def close(self) -> None:
        """Release the consumer."""
        self._consumer.close()


@dataclass
class _Seen:
    keys: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)


class DetectionTracker:
    """Joins the events scored since the model went live with the anomalies produced for them.

    Reads the clean topic from the offsets where scoring started (labels) and the anomalies
    (alarms), and evaluates alarms against labels with `lakeless.model.evaluate`.
    """

    def __init__(self, settings: Settings, pipeline: Pipeline, start: dict[int, int]) -> None:
        topics = pipeline.topics
        self._decoder = pipeline.decoder()
        self._outputs = OutputCodec(pipeline.schema)
        self._clean = make_consumer(settings.kafka, group_id=f"lakeless-demo-{uuid.uuid4().hex}")
        self._clean.assign([TopicPartition(topics.clean, p, o) for p, o in start.items()])
        self._anomalies = make_consumer(
            settings.kafka,
            group_id=f"lakeless-demo-{uuid.uuid4().hex}",
            isolation_level="read_committed",
        )
        parts = self._anomalies.list_topics(topics.anomalies, timeout=10).topics[topics.anomalies]
        self._anomalies.assign([TopicPartition(topics.anomalies, p, 0) for p in parts.partitions])
        self._seen = _Seen()
        self._alarms: set[tuple[str, int]] = set()
        self.versions: set[int] = set()

    def poll(self) -> None:
        """Read what arrived since the last call."""
        while batch := [m for m in self._clean.consume(10_000, timeout=0.2) if not m.error()]:
            decoded, _kept, _problems = self._decoder.decode_valid([m.value() for m in batch])
            self._seen.keys += decoded.key
            self._seen.ts += decoded.time.tolist()
            self._seen.position += decoded.position.tolist()
            self._seen.labels += decoded.label
        while batch := [m for m in self._anomalies.consume(10_000, timeout=0.2) if not m.error()]:
            for message in batch:
                anomaly = self._outputs.decode_anomaly(message.value())
                position = anomaly.sequence if anomaly.sequence is not None else anomaly.time
                self._alarms.add((anomaly.key, position))
                self.versions.add(anomaly.model_version)

    def evaluation(self, settle_ms: int = 3000) -> Evaluation | None:
        """Alarms against labels for the events older than ``settle_ms`` (scored by now)."""
        seen = self._seen
        if not seen.ts:
            return None
        ts = np.asarray(seen.ts, dtype=np.int64)
        keep = ts <= ts.max() - settle_ms
        if not keep.any():
            return None
        idx = np.flatnonzero(keep)
        alarm = np.array(
            [(seen.keys[i], seen.position[i]) in self._alarms for i in idx], dtype=np.float64
        )
        return evaluate(
            alarm,
            0.5,
            [seen.labels[i] for i in idx],
            car_ids=[seen.keys[i] for i in idx],
            ts=ts[idx],
        )

    def close(self) -> None:
        """Release the consumers."""
        self._clean.close()
        self._anomalies.close()
