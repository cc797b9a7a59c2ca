"""The tier benchmark: reading a window wholly from the S3 tier against reading it from local disk.

The talk says reading old data back from tiered storage costs next to nothing. This suite puts
the same records into two topics of one broker that tiers to S3 (a throwaway s3proxy and
broker on free ports, through lakeless' RemoteStorageManager):

``remote``
    a tiered topic whose rolled segments were all copied to S3 and deleted from the broker's
    disk (``local.retention.ms=1000``); the window is every offset below the earliest offset
    still on disk (ListOffsets ``-4``), so all of it comes from S3;
``local``
    an untiered topic with the same records at the same offsets (one producer writes each
    record to the same partition of both), read from the broker's disk.

Both are read from offset 0 to the window's end by an assigned consumer with the settings of
lakeless' own training reader (`lakeless.dataset`: 16 MiB partition fetches), one after the
other and interleaved (remote, local, remote, local, ...), after one unmeasured read
of each (the first remote read also downloads each segment's indexes into the broker's remote
index cache; it is reported as ``remote-first-read``), which also check that both topics return
byte-identical windows (CRC-32 per partition). The report gives the median rate of each, the
spread of the repeats ((max - min) / median), the ratio remote / local with its goal, >= 0.8,
and the CPU seconds per MiB of broker, s3proxy and client together: on a shared machine the
rates move with everyone else's load, the CPU cost of a path much less.

Records are incompressible random bytes (1 KiB by default, no compression), so the numbers
measure the storage path and not a codec. Segments are 64 MiB: Kafka's default is 1 GiB, which
would make the remote path's per-segment work (fetching the segment's indexes once, a GET
without read-ahead at the start of each segment) rarer still.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import KafkaError as ConfluentError
from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._harness import BenchError, kafka_facts
from lakeless.bench._result import BenchReport, BenchResult, machine_info
from lakeless.config import KafkaSettings
from lakeless.dataset._reader import READ_CONFIG
from lakeless.kafka import TopicSpec, create_topics, end_offsets, make_admin, make_producer
from lakeless.stack import Stack, StackSettings, free_port, list_offsets

__all__ = [
    "GOAL",
    "LOCAL",
    "REMOTE",
    "REMOTE_FIRST",
    "TIER_PATHS",
    "TierBenchError",
    "TierBenchReport",
    "TierBenchSettings",
    "run_tier_bench",
    "summarize",
]

logger = logging.getLogger(__name__)

REMOTE: Final = "remote"
LOCAL: Final = "local"
REMOTE_FIRST: Final = "remote-first-read"
#: Every result the suite reports, in order.
TIER_PATHS: Final = (LOCAL, REMOTE, REMOTE_FIRST)
#: remote / local, as the issue states it.
GOAL: Final = 0.8
_MIB: Final = 1024 * 1024


class TierBenchError(BenchError):
    """The tier benchmark could not run (segments not tiered in time, reads incomplete)."""


class TierBenchSettings(BaseModel):
    """What the tier suite measures and how much.

    Attributes:
        mib: MiB of record values in each topic.
        record_bytes: bytes per record value.
        partitions: partitions of each topic (read in parallel by one consumer).
        segment_mib: ``segment.bytes`` of both topics, in MiB.
        repeats: measured reads of each topic (interleaved), at least 3.
        timeout: most seconds to wait for the tiering, and for one read.
        quick: only recorded in the report.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mib: int = Field(default=384, ge=1)
    record_bytes: int = Field(default=1024, ge=16)
    partitions: int = Field(default=3, ge=1)
    segment_mib: int = Field(default=64, ge=1)
    repeats: int = Field(default=3, ge=3)
    timeout: float = Field(default=300.0, gt=0)
    quick: bool = False

    @classmethod
    def for_mode(cls, quick: bool, mib: int | None = None, **fields: Any) -> TierBenchSettings:
        """``--quick`` (160 MiB in 16 MiB segments) or a full run; ``mib`` overrides the size.

        Both are larger than the plugin's chunk cache (128 MiB by default): a smaller window
        would be served from the broker's memory after its first read.
        """
        if quick:
            fields.setdefault("segment_mib", 16)
        return cls(mib=mib or (160 if quick else 384), quick=quick, **fields)

    @property
    def records(self) -> int:
        """Records produced into each topic."""
        return max(self.partitions, self.mib * _MIB // self.record_bytes)


def summarize(rates: list[float]) -> dict[str, float]:
    """Median, min, max and spread ((max - min) / median) of measured rates.

    Example:
        >>> summarize([90.0, 100.0, 110.0])
        {'median': 100.0, 'min': 90.0, 'max': 110.0, 'spread': 0.2}
    """
    median = statistics.median(rates)
    low, high = min(rates), max(rates)
    spread = (high - low) / median if median else 0.0
    return {"median": median, "min": low, "max": high, "spread": round(spread, 3)}


@dataclass
class TierBenchReport(BenchReport):
    """A `BenchReport` whose ceiling is ``local``, plus the remote / local ``ratio`` and goal.

    Example:
        >>> report = TierBenchReport(
        ...     "tier",
        ...     [BenchResult(LOCAL, 100, 1.0), BenchResult(REMOTE, 90, 1.0)],
        ...     ceiling=LOCAL,
        ...     machine={},
        ... )
        >>> report.to_dict()["ratio"]
        {'name': 'remote / local', 'value': 0.9, 'goal': '>= 0.8', 'met': True}
    """

    @property
    def ratio(self) -> float | None:
        """Median remote rate over median local rate (``None`` if either is missing)."""
        by_name = {r.name: r.events_per_s for r in self.results}
        if not by_name.get(LOCAL) or REMOTE not in by_name:
            return None
        return by_name[REMOTE] / by_name[LOCAL]

    def to_dict(self) -> dict[str, Any]:
        """`BenchReport.to_dict` plus ``ratio`` (``{name, value, goal, met}``) and ``cpu``.

        ``cpu``: CPU seconds per MiB read of the median reads, all processes measured together
        (broker, s3proxy, client), and remote / local of that: what the remote path costs,
        however busy the machine was.
        """
        data = super().to_dict()
        per_mib = {}
        for result in self.results:
            cpu, size = result.extra.get("cpu_seconds"), result.extra.get("bytes")
            if result.name in (REMOTE, LOCAL) and cpu and size:
                per_mib[result.name] = sum(cpu.values()) / (size / _MIB)
        if len(per_mib) == 2 and per_mib[LOCAL] > 0:
            data["cpu"] = {
                "remote_s_per_mib": round(per_mib[REMOTE], 4),
                "local_s_per_mib": round(per_mib[LOCAL], 4),
                "ratio": round(per_mib[REMOTE] / per_mib[LOCAL], 2),
            }
        ratio = self.ratio
        data["ratio"] = {
            "name": f"{REMOTE} / {LOCAL}",
            "value": None if ratio is None else round(ratio, 3),
            "goal": f">= {GOAL}",
            "met": None if ratio is None else ratio >= GOAL,
        }
        return data

    def table(self) -> Any:
        """`BenchReport.table` with the ratio and its goal in the caption."""
        table = super().table()
        ratio = self.to_dict()["ratio"]
        if ratio["value"] is not None:
            verdict = "met" if ratio["met"] else "not met"
            table.caption = (
                f"{table.caption}\n{ratio['name']} = {ratio['value']:.2f} "
                f"(medians; goal {ratio['goal']}: {verdict})"
            )
        return table


@dataclass(frozen=True)
class _Window:
    """Per partition, the offsets [0, end) that are read."""

    ends: dict[int, int]

    @property
    def records(self) -> int:
        return sum(self.ends.values())


@dataclass(frozen=True)
class _Read:
    records: int
    value_bytes: int
    seconds: float
    sizes: dict[int, int]  # value bytes per partition
    checksums: dict[int, int]  # CRC-32 of the values per partition (when asked for)
    cpu: dict[str, float]  # CPU seconds per process during the read (broker, s3proxy, client)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 where /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class _TierRun:
    def __init__(
        self, bench: TierBenchSettings, kafka: KafkaSettings, pids: dict[str, int] | None = None
    ) -> None:
        self.bench = bench
        self.kafka = kafka
        #: Processes whose CPU time each read reports (the throwaway broker and s3proxy).
        self.pids = pids or {}
        run_id = uuid.uuid4().hex[:8]
        self.remote = f"lakeless-bench-{run_id}-tier-remote"
        self.local = f"lakeless-bench-{run_id}-tier-local"

    def run(self) -> list[BenchResult]:
        bench = self.bench
        segment = {"segment.bytes": str(bench.segment_mib * _MIB), "retention.ms": "-1"}
        create_topics(
            self.kafka,
            [
                TopicSpec(
                    self.remote,
                    bench.partitions,
                    1,
                    {
                        **segment,
                        "remote.storage.enable": "true",
                        "local.retention.ms": "1000",
                        "file.delete.delay.ms": "1000",
                    },
                ),
                TopicSpec(self.local, bench.partitions, 1, segment),
            ],
        )
        self._produce()
        window = self._wait_until_tiered()
        logger.info(
            "window: %d records (%.0f MiB) per topic, wholly remote in %s",
            window.records,
            window.records * bench.record_bytes / _MIB,
            self.remote,
        )
        # Unmeasured, with checksums: the first remote read also fills the broker's remote index
        # cache. The measured reads only count (a checksum per record would dilute the ratio).
        first = self._read(self.remote, window, checksum=True)
        local_first = self._read(self.local, window, checksum=True)
        reads: dict[str, list[_Read]] = {REMOTE: [], LOCAL: []}
        for repeat in range(bench.repeats):
            for name, topic in ((REMOTE, self.remote), (LOCAL, self.local)):
                reads[name].append(read := self._read(topic, window))
                logger.info(
                    "repeat %d %s: %.0f MiB/s",
                    repeat + 1,
                    name,
                    read.value_bytes / _MIB / read.seconds,
                )
        if first.checksums != local_first.checksums:
            raise TierBenchError("the remote and the local window differ: the benchmark is void")
        if any(r.sizes != first.sizes for rs in reads.values() for r in rs):
            raise TierBenchError("a measured read returned other records or sizes")
        results = [self._result(name, reads[name]) for name in (LOCAL, REMOTE)]
        results.append(
            BenchResult(
                REMOTE_FIRST,
                first.records,
                first.seconds,
                {
                    "mib_per_s": round(first.value_bytes / _MIB / first.seconds, 1),
                    "note": "first read: indexes fetched from S3",
                },
            )
        )
        return results

    def _result(self, name: str, reads: list[_Read]) -> BenchResult:
        """The median read (by rate) with every repeat in ``extra``."""
        rates = [r.records / r.seconds for r in reads]
        ordered = sorted(range(len(reads)), key=lambda i: rates[i])
        median = reads[ordered[len(ordered) // 2]]
        stats = summarize(rates)
        return BenchResult(
            name,
            median.records,
            median.seconds,
            {
                "repeats_events_per_s": [round(rate, 1) for rate in rates],
                "spread": stats["spread"],
                "mib_per_s": round(median.value_bytes / _MIB / median.seconds, 1),
                "bytes": median.value_bytes,
                # Robust to the machine's other load: CPU seconds of the median read, by process.
                "cpu_seconds": {k: round(v, 2) for k, v in median.cpu.items()},
                "note": f"median of {len(reads)}, spread {stats['spread']:.0%}",
            },
        )

    def _produce(self) -> None:
        bench = self.bench
        producer = make_producer(self.kafka, compression_type="none", linger_ms=20)
        rng = np.random.default_rng(7)
        errors: list[str] = []

        def report(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(str(error))

        started = time.monotonic()
        for i in range(bench.records):
            value = rng.bytes(bench.record_bytes)
            key = b"car-%d" % (i % 1000)
            for topic in (self.remote, self.local):
                while True:
                    try:
                        producer.produce(
                            topic, value, key, partition=i % bench.partitions, on_delivery=report
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
        if producer.flush(bench.timeout) or errors:
            raise TierBenchError(f"producing failed: {errors[:3]}")
        logger.info(
            "produced %d records into each topic in %.1fs",
            bench.records,
            time.monotonic() - started,
        )

    def _wait_until_tiered(self) -> _Window:
        """Wait until the remote topic's records are in S3 and off the broker's disk.

        Past ``local.retention.ms`` the broker rolls even the active segment, so in the end
        the earliest offset on disk is the log end: the whole topic is the window. Should the
        broker stop short of that, a start offset that stopped moving (and is above 0) will do.
        """
        deadline = time.monotonic() + self.bench.timeout
        ends = end_offsets(self.kafka, self.remote, timeout=30)
        last: dict[int, int] = {}
        stable = 0
        while True:
            local_start = list_offsets(self.kafka.bootstrap_servers, self.remote, "-4")
            if local_start == ends:
                return _Window(dict(local_start))
            moved_on = all(local_start.get(p, 0) > 0 for p in range(self.bench.partitions))
            stable = stable + 1 if moved_on and local_start == last else 0
            last = local_start
            if stable >= 5:
                return _Window(dict(local_start))
            if time.monotonic() > deadline:
                raise TierBenchError(
                    f"segments of {self.remote} not tiered within {self.bench.timeout:.0f}s "
                    f"(earliest offsets on disk {local_start}, log ends {ends})"
                )
            time.sleep(1.0)

    def _read(self, topic: str, window: _Window, *, checksum: bool = False) -> _Read:
        """Read offsets [0, end) of every partition; the clock runs from assign to the last.

        With ``checksum``, a CRC-32 of each partition's values (else ``checksums`` stay 0).
        """
        consumer = Consumer(
            {
                **READ_CONFIG,
                **self.kafka.librdkafka(),
                "group.id": f"lakeless-bench-tier-{uuid.uuid4().hex[:8]}",
            }
        )
        left = dict(window.ends)
        checksums = dict.fromkeys(left, 0)
        sizes = dict.fromkeys(left, 0)
        records = value_bytes = 0
        cpu_before = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        client_before = sum(os.times()[:2])
        try:
            started = time.monotonic()
            consumer.assign([TopicPartition(topic, p, 0) for p in left])
            deadline = started + self.bench.timeout
            while any(left.values()):
                if time.monotonic() > deadline:
                    raise TierBenchError(f"reading {topic} took over {self.bench.timeout:.0f}s")
                for msg in consumer.consume(10_000, timeout=0.5):
                    if (error := msg.error()) is not None:
                        if error.code() == ConfluentError._PARTITION_EOF:
                            continue
                        raise TierBenchError(f"reading {topic}: {error}")
                    p, offset = msg.partition(), msg.offset()
                    if offset >= window.ends[p]:
                        continue
                    value = msg.value()
                    records += 1
                    value_bytes += len(value)
                    sizes[p] += len(value)
                    if checksum:
                        checksums[p] = zlib.crc32(value, checksums[p])
                    left[p] -= 1
                    if not left[p]:
                        consumer.pause([TopicPartition(topic, p)])
            seconds = time.monotonic() - started
            cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in self.pids.items()}
            cpu["client"] = sum(os.times()[:2]) - client_before  # librdkafka's threads too
        finally:
            consumer.close()
        return _Read(records, value_bytes, seconds, sizes, checksums, cpu)

    def cleanup(self) -> None:
        admin = make_admin(self.kafka)  # must outlive its futures
        try:
            for future in admin.delete_topics([self.remote, self.local]).values():
                future.result()
        except Exception as exc:  # cleanup never hides the results
            logger.warning("could not delete the benchmark's topics: %s", exc)


@contextlib.contextmanager
def _throwaway_s3_stack(workdir: Path) -> Iterator[Stack]:
    """s3proxy and a broker tiering to it, on free ports, for this run only."""
    settings = StackSettings(
        data_dir=workdir / "stack",
        kafka_port=free_port(),
        controller_port=free_port(),
        mqtt_port=free_port(),
        s3_port=free_port(),
        tier="s3",
    )
    stack = Stack(settings)
    assert stack.s3 is not None
    stack.kafka.extra_config.update(stack.s3.broker_config())
    stack.s3.start()
    try:
        stack.kafka.start()
        yield stack
    finally:
        stack.kafka.stop()
        stack.s3.stop()


def run_tier_bench(
    bench: TierBenchSettings | None = None, kafka: KafkaSettings | None = None
) -> TierBenchReport:
    """Run the tier suite; returns `TIER_PATHS` with the remote / local ratio.

    Args:
        bench: what to measure (default: a full run).
        kafka: an existing cluster that tiers to remote storage; ``None`` starts s3proxy and a
            throwaway broker tiering to it.

    Raises:
        TierBenchError: the segments were not tiered in time, or the windows differ.
        lakeless.errors.StackError: the throwaway stack did not start.
    """
    bench = bench or TierBenchSettings()
    started = time.monotonic()
    machine = machine_info()
    throwaway = kafka is None
    with (
        tempfile.TemporaryDirectory(prefix="lakeless-bench-tier-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        pids: dict[str, int] = {}
        if kafka is None:
            throwaway_stack = stack.enter_context(_throwaway_s3_stack(Path(tmp)))
            kafka = throwaway_stack.kafka_settings
            assert throwaway_stack.s3 is not None
            for name, pid in (
                ("broker", throwaway_stack.kafka.pid()),
                ("s3proxy", throwaway_stack.s3.pid()),
            ):
                if pid is not None:
                    pids[name] = pid
        settings = kafka
        run = _TierRun(bench, settings, pids)
        try:
            results = run.run()
        finally:
            if not throwaway:
                run.cleanup()
    machine |= {
        **kafka_facts(settings, throwaway=throwaway, label="throwaway (tier s3, s3proxy)"),
        "mib": bench.mib,
        "record_bytes": bench.record_bytes,
        "partitions": bench.partitions,
        "segment_mib": bench.segment_mib,
        "reader": {k: v for k, v in READ_CONFIG.items() if "fetch" in k},
    }
    return TierBenchReport.finished(
        "tier", results, started=started, machine=machine, ceiling=LOCAL, quick=bench.quick
    )
