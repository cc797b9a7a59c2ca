"""The in-run peers of ``bench pipeline``: the MQTT leg alone, before and after, and Kafka's own.

``mqtt-publish``
    The load generator alone: the simulator (`lakeless.fleet.MqttSink`, its batched path)
    publishing as fast as it can into Mosquitto at QoS 1, a persistent bridge session subscribed
    but disconnected so that Mosquitto queues every message; events/s PUBACKed by Mosquitto.
``bridge-drain-paho`` and ``bridge-drain-fast``
    One `lakeless.bridge.Bridge` draining those queued messages into Kafka (acknowledged on both
    sides), with paho's plain receive path (``client="paho"``) and with the batched one
    (``client="fast"``), interleaved, in this process; ``cpu_us_per_msg`` is this process' CPU
    time (every thread, librdkafka's included) per message.
``kafka-producer-perf``
    Kafka's ``ProducerPerformance`` with the same JSON events (see `lakeless.bench._ingest`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from lakeless.bench._harness import mqtt_session
from lakeless.bench._ingest import IngestBenchSettings, _IngestRun
from lakeless.bench._latency import spread
from lakeless.bench._result import BenchResult
from lakeless.bridge import Bridge, BridgeSettings
from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.fleet import FleetSettings, MqttSink, Simulator
from lakeless.kafka import TopicSpec, create_topics
from lakeless.lifecycle import RunLimits

__all__ = ["MqttLegPeers", "producer_perf", "spread"]

logger = logging.getLogger(__name__)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


class MqttLegPeers:
    """Measures ``mqtt-publish``, ``bridge-drain-paho`` and ``bridge-drain-fast``."""

    def __init__(
        self, kafka: KafkaSettings, mqtt: MqttSettings, prefix: str, partitions: int
    ) -> None:
        self.kafka = kafka
        self.mqtt = mqtt
        self.prefix = prefix
        self.partitions = partitions
        self.topic_template = f"{prefix}-peer/{{key}}/sensors"
        self.topics: list[str] = []
        self.sessions: list[str] = []

    def run(self, events: int, repeats: int, timeout: float) -> list[BenchResult]:
        """Interleaved: publish, drain with paho; publish, drain fast; ``repeats`` times."""
        runs: dict[str, list[dict[str, Any]]] = {"publish": [], "paho": [], "fast": []}
        for _ in range(repeats):
            for client in ("paho", "fast"):
                published, drained = self._once(client, events, timeout)
                runs["publish"].append(published)
                runs[client].append(drained)
        results = [_summary("mqtt-publish", runs["publish"], "simulator -> Mosquitto, PUBACKed")]
        for client in ("paho", "fast"):
            results.append(
                _summary(
                    f"bridge-drain-{client}",
                    runs[client],
                    "queued in Mosquitto -> Kafka acked -> PUBACK, one bridge",
                )
            )
        paho, fast = results[1].events_per_s, results[2].events_per_s
        results[2].extra["speedup_vs_paho"] = round(fast / paho, 2) if paho else None
        return results

    def _once(self, client: str, events: int, timeout: float) -> tuple[dict[str, Any], ...]:
        run = uuid.uuid4().hex[:6]
        topic = f"{self.prefix}-peer-{run}"
        create_topics(self.kafka, [TopicSpec(topic, self.partitions, 1)])
        self.topics.append(topic)
        config = BridgeSettings(
            client_id=f"{self.prefix}-peer-{run}",
            client=client,  # type: ignore[arg-type]
            mqtt_topic=self.topic_template,
            session_expiry_s=max(600, int(4 * timeout)),
        )
        self.sessions.append(config.client_id)
        mqtt_session(
            self.mqtt,
            config.client_id,
            subscribe=config.subscription("car-fleet"),
            expiry_s=config.session_expiry_s,
        )
        sink = MqttSink(self.mqtt, topic=self.topic_template, client_id=f"{self.prefix}-sim-{run}")
        fleet = FleetSettings(cars=1000, speedup=0.0, seed=1, to="mqtt")
        load = _load()
        stats = Simulator(fleet, sink=sink, flush_timeout=timeout).run(
            count=events, timeout=timeout
        )
        published = {
            "events": stats.delivered,
            "seconds": stats.wall_seconds,
            "complete": stats.delivered >= events,
            "load_avg_1m": load,
        }
        bridge = Bridge(
            Settings(
                kafka=self.kafka, mqtt=self.mqtt, topics=TopicSettings(raw=topic), bridge=config
            )
        )
        load = _load()
        cpu, started = time.process_time(), time.monotonic()
        bstats = bridge.run(RunLimits(count=events, timeout=timeout))
        seconds = time.monotonic() - started
        drained = {
            "events": bstats.acked,
            "seconds": seconds,
            "complete": bstats.acked >= events,
            "cpu_us_per_msg": round((time.process_time() - cpu) / max(1, bstats.acked) * 1e6, 1),
            "load_avg_1m": load,
        }
        logger.info(
            "bridge-drain-%s: %d in %.1fs (publish %.0f/s)",
            client,
            bstats.acked,
            seconds,
            published["events"] / max(published["seconds"], 1e-9),
        )
        return published, drained

    def cleanup(self) -> None:
        """Delete the peers' MQTT sessions (their topics go with the suite's)."""
        for client_id in self.sessions:
            try:
                mqtt_session(self.mqtt, client_id, subscribe=None, expiry_s=0)
            except Exception as exc:  # cleanup must never hide the results
                logger.warning("could not delete MQTT session %s: %s", client_id, exc)


def _summary(name: str, runs: list[dict[str, Any]], note: str) -> BenchResult:
    """The median run as the result; every run's rate, the spread and the loads in extra."""
    rates = [r["events"] / r["seconds"] if r["seconds"] else 0.0 for r in runs]
    middle = sorted(range(len(runs)), key=lambda i: rates[i])[len(runs) // 2]
    best = runs[middle]
    extra: dict[str, Any] = {
        "runs_per_s": [round(rate, 1) for rate in rates],
        "spread": spread(rates),
        "complete": all(r["complete"] for r in runs),
        "load_avg_1m": [r["load_avg_1m"] for r in runs],
        "note": note,
    }
    if "cpu_us_per_msg" in best:
        extra["cpu_us_per_msg"] = [r["cpu_us_per_msg"] for r in runs]
    return BenchResult(name, best["events"], best["seconds"], extra)


def producer_perf(
    kafka: KafkaSettings, mqtt: MqttSettings, workdir: Path, records: int, timeout: float
) -> tuple[BenchResult, list[str]]:
    """Kafka's producer-perf tool on the pipeline's JSON events; returns it and its topics."""
    bench = IngestBenchSettings(events=records, ceiling_events=records, timeout=timeout)
    run = _IngestRun(bench, kafka, mqtt)
    create_topics(kafka, [TopicSpec(run.topics.perf, 6, 1)])
    load = _load()
    result = run.producer_perf(workdir)
    result.extra["load_avg_1m"] = load
    return result, [run.topics.perf]
