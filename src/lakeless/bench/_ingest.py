"""The ingest benchmark: how fast events get from the devices into clean Kafka topics.

Every path is measured in one run, on one machine, against one Kafka broker and one Mosquitto
(by default throwaway ones on free ports, started for the run and always stopped after it), each
into its own freshly created topics:

``kafka-producer-perf`` (the ceiling)
    Kafka's own ``ProducerPerformance`` tool from the broker's jars, with the producer settings
    the pipeline uses (``acks=all``, idempotent, ``linger.ms=5``, lz4, and librdkafka's 1 MB
    ``batch.size``: Java's 16 KB default halves its rate), sending real simulated JSON events
    (``--payload-file``) so compression sees the same data. A cold JVM's rate still climbs
    after 100,000 records, so it sends at least 300,000.
``simulate->mqtt``
    The fleet simulator as fast as it goes into Mosquitto at QoS 1; events per second that the
    broker acknowledged (PUBACK), flush included. A persistent bridge session is subscribed
    (but disconnected) meanwhile, so Mosquitto routes and queues every message, as in
    production while the bridge is down.
``bridge``
    The MQTT -> Kafka bridge draining those queued messages: `lakeless.bridge.Bridge` is started
    on its existing session and timed until all ``events`` are acknowledged on both sides (Kafka
    acknowledged the record, then the bridge sent PUBACK). Pre-loading the queue isolates the
    bridge's rate from the publisher's; running both at once would measure the slower of them
    (and two processes fighting over two cores).
``simulate->kafka``
    The simulator straight into Kafka (`lakeless.fleet.simulate_to_kafka`); this also fills the
    raw topic that ``preprocess`` reads.
``preprocess``
    `lakeless.preprocess.PreprocessStage` from start (consumer-group join included) until it
    has read, validated, produced and committed all ``events`` (clean and dead-lettered alike).

Before the first measurement an unmeasured warm-up produces a few thousand events and
preprocesses them, so that no path pays alone for the broker's cold JIT or for the creation of
``__consumer_offsets`` by the first consumer group. Nothing is asserted about speed: the report
gives each path's rate and its ratio to the ceiling (see `lakeless.bench.BenchReport`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._harness import (
    BenchError,
    delete_bench_topics,
    java_client_properties,
    kafka_facts,
    mqtt_session,
    throwaway_kafka_unless,
    throwaway_mqtt,
)
from lakeless.bench._result import BenchReport, BenchResult, machine_info
from lakeless.bridge import Bridge, BridgeSettings
from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.fleet import Fleet, FleetSettings, MqttSink, Simulator, simulate_to_kafka
from lakeless.fleet._sinks import encode_slice
from lakeless.kafka import TopicSpec, create_topics
from lakeless.lifecycle import RunLimits
from lakeless.preprocess import PreprocessSettings, PreprocessStage
from lakeless.stack import run_kafka_tool

__all__ = [
    "CEILING",
    "FULL_EVENTS",
    "INGEST_PATHS",
    "QUICK_EVENTS",
    "BenchError",
    "IngestBenchSettings",
    "parse_producer_perf",
    "run_ingest_bench",
]

logger = logging.getLogger(__name__)

#: Events per path with ``--quick`` (the whole suite then takes well under a minute).
QUICK_EVENTS: Final = 30_000
#: Events per path by default.
FULL_EVENTS: Final = 200_000
#: The fewest records the JVM producer-perf tool gets, so that it reaches its steady rate.
MIN_CEILING_EVENTS: Final = 300_000
#: Name of the ceiling result.
CEILING: Final = "kafka-producer-perf"
#: Every result the ingest suite reports, in order.
INGEST_PATHS: Final = (CEILING, "simulate->mqtt", "bridge", "simulate->kafka", "preprocess")

_PRODUCER_PERF: Final = "org.apache.kafka.tools.ProducerPerformance"
#: The summary line ProducerPerformance prints last (its 5-second progress lines lack "50th").
_PERF_SUMMARY: Final = re.compile(
    r"^(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency.*50th",
    re.MULTILINE,
)


class IngestBenchSettings(BaseModel):
    """What the ingest suite measures and how much.

    Attributes:
        events: events per measured path.
        ceiling_events: records for the producer-perf ceiling; ``None``: ``events``, at least
            `MIN_CEILING_EVENTS`.
        warmup_events: unmeasured events produced first to warm the broker up.
        cars: simulated cars (events per simulator step).
        partitions: partitions of every topic the suite creates.
        timeout: most wall seconds one path may take; a path that runs out is reported with
            the events it completed and ``complete: false``.
        seed: simulator seed (the same events every run).
        quick: only recorded in the report.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: int = Field(default=FULL_EVENTS, ge=1)
    ceiling_events: int | None = Field(default=None, ge=1)
    warmup_events: int = Field(default=20_000, ge=0)
    cars: int = Field(default=1000, ge=1)
    partitions: int = Field(default=6, ge=1)
    timeout: float = Field(default=300.0, gt=0)
    seed: int = Field(default=1, ge=0)
    quick: bool = False

    @classmethod
    def for_mode(cls, quick: bool, events: int | None = None, **fields: Any) -> IngestBenchSettings:
        """Settings for ``--quick`` or a full run; ``events`` overrides the mode's count."""
        count = events or (QUICK_EVENTS if quick else FULL_EVENTS)
        timeout = fields.pop("timeout", 60.0 if quick else 300.0)
        return cls(events=count, quick=quick, timeout=timeout, **fields)

    @property
    def perf_events(self) -> int:
        """Records the producer-perf ceiling sends."""
        return self.ceiling_events or max(self.events, MIN_CEILING_EVENTS)


def parse_producer_perf(output: str) -> tuple[int, float, dict[str, float]]:
    """Records, records/s and latencies (ms) from ProducerPerformance's summary line.

    Example:
        >>> sent, rate, latencies = parse_producer_perf(
        ...     "100000 records sent, 48379.293662 records/sec (26.23 MB/sec), 94.17 ms avg "
        ...     "latency, 426.00 ms max latency, 82 ms 50th, 193 ms 95th, 246 ms 99th, "
        ...     "285 ms 99.9th."
        ... )
        >>> sent, rate, latencies["max_latency_ms"]
        (100000, 48379.293662, 426.0)

    Raises:
        BenchError: no summary line in ``output``.
    """
    matches = list(_PERF_SUMMARY.finditer(output))
    if not matches:
        raise BenchError(f"no summary line in ProducerPerformance's output:\n{output[-2000:]}")
    last = matches[-1]
    latencies = {
        "mb_per_s": float(last["mb"]),
        "avg_latency_ms": float(last["avg"]),
        "max_latency_ms": float(last["max"]),
    }
    return int(last["records"]), float(last["rate"]), latencies


@dataclass(frozen=True)
class _Topics:
    """The suite's own Kafka topics, unique per run."""

    warmup: str
    perf: str
    bridged: str
    raw: str
    clean: str
    dlq: str

    @classmethod
    def unique(cls, run_id: str) -> _Topics:
        prefix = f"lakeless-bench-{run_id}"
        return cls(
            *(f"{prefix}-{part}" for part in ("warmup", "perf", "bridged", "raw", "clean", "dlq"))
        )

    def all(self) -> list[str]:
        return [self.warmup, self.perf, self.bridged, self.raw, self.clean, self.dlq]


class _IngestRun:
    """One run of the suite against given brokers."""

    def __init__(
        self, bench: IngestBenchSettings, kafka: KafkaSettings, mqtt_settings: MqttSettings
    ):
        self.bench = bench
        self.kafka = kafka
        self.mqtt = mqtt_settings
        self.run_id = uuid.uuid4().hex[:8]
        self.topics = _Topics.unique(self.run_id)
        self.bridge_settings = BridgeSettings(
            client_id=f"lakeless-bench-{self.run_id}",
            share_group=f"lakeless-bench-{self.run_id}",
            # Long enough to live through the pre-load; deleted explicitly at the end anyway.
            session_expiry_s=max(600, int(4 * bench.timeout)),
        )

    def settings(self, raw: str, preprocess: PreprocessSettings | None = None) -> Settings:
        topics = TopicSettings(raw=raw, clean=self.topics.clean, dlq=self.topics.dlq)
        return Settings(
            kafka=self.kafka,
            mqtt=self.mqtt,
            topics=topics,
            preprocess=preprocess or PreprocessSettings(),
        )

    def run(self, workdir: Path) -> list[BenchResult]:
        bench = self.bench
        create_topics(
            self.kafka,
            [TopicSpec(name, bench.partitions, 1) for name in self.topics.all()],
        )
        if bench.warmup_events:
            logger.info("warming up with %d events", bench.warmup_events)
            self._simulate_to_kafka(self.topics.warmup, bench.warmup_events)
            # The first consumer group on a fresh broker creates __consumer_offsets (seconds).
            PreprocessStage(
                self.settings(
                    self.topics.warmup,
                    PreprocessSettings(group_id=f"lakeless-bench-{self.run_id}-warmup"),
                ),
            ).run(RunLimits(count=bench.warmup_events, timeout=bench.timeout))
        results = [self.producer_perf(workdir)]
        results.append(self.simulate_to_mqtt())
        results.append(self.bridge())
        results.append(self.simulate_kafka())
        results.append(self.preprocess())
        return results

    def cleanup(self, *, kafka: bool, mqtt: bool) -> None:
        """Delete the bridge's MQTT session (``mqtt``) and the suite's topics (``kafka``)."""
        if mqtt:
            with contextlib.suppress(Exception):
                mqtt_session(self.mqtt, self.bridge_settings.client_id, subscribe=None, expiry_s=0)
        if kafka:
            delete_bench_topics(self.kafka, self.topics.all())

    # ---- the paths ---------------------------------------------------------------------------

    def producer_perf(self, workdir: Path) -> BenchResult:
        fleet = Fleet(self.bench.cars, seed=self.bench.seed)
        batch = fleet.step()
        payloads = encode_slice(batch, 0, len(batch))
        payload_file = workdir / "payloads.jsonl"
        payload_file.write_bytes(b"\n".join(payloads))
        config_file = workdir / "producer.properties"
        props = {
            **java_client_properties(self.kafka),
            "acks": "all",
            "enable.idempotence": "true",
            "linger.ms": "5",
            "compression.type": "lz4",
            # librdkafka's default; with Java's 16 KB batches the tool is no ceiling at all.
            "batch.size": "1000000",
        }
        # Java .properties treat backslashes as escapes (the JAAS line may contain some).
        config_file.write_text(
            "".join(
                f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in props.items()
            )
        )
        records = self.bench.perf_events
        logger.info("%s: %d records of real events", CEILING, records)
        output = run_kafka_tool(
            _PRODUCER_PERF,
            "--topic",
            self.topics.perf,
            "--num-records",
            str(records),
            "--payload-file",
            str(payload_file),
            "--throughput",
            "-1",
            "--producer.config",
            str(config_file),
            timeout=self.bench.timeout,
        )
        sent, rate, latencies = parse_producer_perf(output)
        mean_size = sum(map(len, payloads)) / len(payloads)
        return BenchResult(
            CEILING,
            sent,
            sent / rate if rate > 0 else 0.0,
            {
                "tool": _PRODUCER_PERF,
                "record_bytes_mean": round(mean_size, 1),
                **latencies,
                "note": "Kafka's own Java producer, same settings",
            },
        )

    def simulate_to_mqtt(self) -> BenchResult:
        bench = self.bench
        mqtt_session(
            self.mqtt,
            self.bridge_settings.client_id,
            subscribe=self.bridge_settings.subscription("car-fleet"),
            expiry_s=self.bridge_settings.session_expiry_s,
        )
        sink = MqttSink(self.mqtt, client_id=f"lakeless-bench-sim-{self.run_id}")
        fleet = FleetSettings(cars=bench.cars, speedup=0.0, seed=bench.seed, to="mqtt")
        logger.info("simulate->mqtt: %d events at QoS 1", bench.events)
        stats = Simulator(fleet, sink=sink, flush_timeout=bench.timeout).run(
            count=bench.events, timeout=bench.timeout
        )
        return BenchResult(
            "simulate->mqtt",
            stats.delivered,
            stats.wall_seconds,
            {
                "sent": stats.events,
                "complete": stats.delivered >= bench.events,
                "qos": 1,
                "note": "PUBACKed by Mosquitto",
            },
        )

    def bridge(self) -> BenchResult:
        bench = self.bench
        bridge = Bridge(
            self.settings(self.topics.bridged).model_copy(update={"bridge": self.bridge_settings})
        )
        logger.info("bridge: draining %d queued messages into Kafka", bench.events)
        started = time.monotonic()
        stats = bridge.run(RunLimits(count=bench.events, timeout=bench.timeout))
        seconds = time.monotonic() - started
        return BenchResult(
            "bridge",
            stats.acked,
            seconds,
            {
                "received": stats.received,
                "redelivered": stats.redelivered,
                "complete": stats.acked >= bench.events,
                "note": "queued in Mosquitto -> Kafka acked -> PUBACK",
            },
        )

    def simulate_kafka(self) -> BenchResult:
        bench = self.bench
        logger.info("simulate->kafka: %d events", bench.events)
        stats = self._simulate_to_kafka(self.topics.raw, bench.events)
        return BenchResult(
            "simulate->kafka",
            stats.delivered,
            stats.wall_seconds,
            {"complete": stats.delivered >= bench.events, "note": "fills preprocess' input"},
        )

    def preprocess(self) -> BenchResult:
        bench = self.bench
        stage = PreprocessStage(
            self.settings(
                self.topics.raw,
                # A new group on purpose: the clean topic holds the warm-up's records already.
                PreprocessSettings(group_id=f"lakeless-bench-{self.run_id}", reprocess=True),
            ),
        )
        logger.info("preprocess: %d events", bench.events)
        stats = stage.run(RunLimits(count=bench.events, timeout=bench.timeout))
        return BenchResult(
            "preprocess",
            stats.received,
            stats.seconds,
            {
                "clean": stats.clean,
                "dlq": stats.dlq,
                "batches": stats.batches,
                "complete": stats.received >= bench.events,
                "note": "consumer-group join included",
            },
        )

    def _simulate_to_kafka(self, topic: str, events: int) -> Any:
        bench = self.bench
        return simulate_to_kafka(
            self.settings(topic),
            cars=bench.cars,
            duration=events / bench.cars + 1,
            seed=bench.seed,
            topic=topic,
            count=events,
            timeout=bench.timeout,
        )


def run_ingest_bench(
    bench: IngestBenchSettings | None = None,
    kafka: KafkaSettings | None = None,
    mqtt_settings: MqttSettings | None = None,
) -> BenchReport:
    """Run the ingest suite; returns a report with `INGEST_PATHS` and the ceiling's ratios.

    Args:
        bench: what to measure (default: a full run).
        kafka: an existing cluster to use; ``None`` starts a throwaway broker for the run.
        mqtt_settings: an existing MQTT broker; ``None`` starts a throwaway Mosquitto.

    Raises:
        BenchError: a tool's output could not be read.
        lakeless.errors.StackError: a throwaway broker did not start.
    """
    bench = bench or IngestBenchSettings()
    started = time.monotonic()
    machine = machine_info()
    throwaway, own_mqtt = kafka is None, mqtt_settings is None
    with (
        tempfile.TemporaryDirectory(prefix="lakeless-bench-") as tmp,
        throwaway_kafka_unless(kafka, Path(tmp)) as settings,
        contextlib.ExitStack() as stack,
    ):
        if mqtt_settings is None:
            mqtt_settings = stack.enter_context(throwaway_mqtt(Path(tmp)))
        run = _IngestRun(bench, settings, mqtt_settings)
        try:
            results = run.run(Path(tmp))
        finally:
            # Throwaway brokers go away with their data; shared ones get their state back.
            run.cleanup(kafka=not throwaway, mqtt=not own_mqtt)
    machine |= kafka_facts(settings, throwaway=throwaway)
    return BenchReport.finished(
        "ingest", results, started=started, machine=machine, ceiling=CEILING, quick=bench.quick
    )
