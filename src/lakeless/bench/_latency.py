"""Latency from event time to output, measured one way for every bench that reports it.

A `LatencyProbe` offers a steady rate of clean records, each stamped with the current time as
its event time, to an input topic while a system under test (the scorer, the relay, ...) turns
them into output records; a reader of the output topic takes *receive time minus event time*
for every output whose event time falls in the measured window (after a warm-up). The probe
first offers a trickle until the first output arrives, so start-up (process spawn, model load,
group join) is never measured; then ``rate`` for ``warmup + seconds``.

A latency is only a latency while the system keeps up: the probe also counts the outputs
received during the window. When fewer than ``min_ratio`` of the offered rate came out (the
system fell behind and a backlog grew) the measurement is *saturated*, and says so, instead of
reporting a backlog as a latency.

`RelayStep` is the floor of a consume -> produce stage: `lakeless.kafka.BatchLoop` (the same
loop, consumer and producer settings as the scorer) re-producing every record unchanged, no
decoding and no model. `kafka_e2e_latency` runs Kafka's own
``org.apache.kafka.tools.EndToEndLatency`` (Kafka 4.2+ named arguments), which sends one
record at a time synchronously and polls it back with ``fetch.max.wait.ms=0``: the latency
floor of the broker and the Java clients on this machine.

`percentiles` (shared with ``bench pipeline``) and `json_event_time` are the pieces both ways
of measuring (this live one, and ``bench pipeline``'s LogAppendTime read afterwards) share.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Final

import msgspec
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Message, TopicPartition

from lakeless.bench._result import BenchResult
from lakeless.config import KafkaSettings, Settings
from lakeless.kafka import (
    BaseStep,
    BatchLoop,
    BatchResult,
    LoopConfig,
    end_offsets,
    make_consumer,
    make_producer,
)
from lakeless.lifecycle import RunLimits

__all__ = [
    "KAFKA_E2E",
    "RELAY",
    "LatencyProbe",
    "ProbeRun",
    "RelayStep",
    "clean_event_time",
    "end_offsets",
    "json_event_time",
    "kafka_e2e_latency",
    "parse_end_to_end_latency",
    "percentiles",
    "repeated_e2e",
    "repeated_latency",
    "run_relay",
    "spread",
]

logger = logging.getLogger(__name__)

#: Result names of the floors ``bench score`` measures beside its ``latency``.
RELAY: Final = "relay-latency"
KAFKA_E2E: Final = "kafka-e2e-latency"
_E2E_MAIN: Final = "org.apache.kafka.tools.EndToEndLatency"
_E2E_SUMMARY: Final = re.compile(
    r"Avg latency: (?P<avg>[\d.]+) ms\s+Percentiles: 50th = (?P<p50>\d+), "
    r"99th = (?P<p99>\d+), 99\.9th = (?P<p999>\d+)"
)
#: Seconds between two offered chunks (the send-time granularity of the probe).
_TICK: Final = 0.005
#: Events/s offered until the first output arrives.
_TRICKLE: Final = 20


# ---- the shared measuring pieces ------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, Any]:
    """``p50_ms``, ``p99_ms``, ``max_ms`` (2 decimals) and ``samples`` (``None`` when empty).

    Example:
        >>> stats = percentiles([float(i) for i in range(1, 101)])
        >>> stats["p50_ms"], stats["p99_ms"], stats["max_ms"], stats["samples"]
        (50.5, 99.01, 100.0, 100)
    """
    if not len(values):
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "samples": 0}
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    p50, p99 = np.percentile(array, [50, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(array.max()), 2),
        "samples": len(array),
    }


def spread(values: Sequence[float]) -> float | None:
    """(max - min) / median of repeated measurements (``None`` for fewer than two).

    Example:
        >>> spread([90.0, 100.0, 110.0])
        0.2
    """
    if len(values) < 2 or not median(values):
        return None
    return round((max(values) - min(values)) / median(values), 3)


def json_event_time(time_field: str = "ts") -> Callable[[bytes], int | None]:
    """Reads the event time (ms) of a JSON output record (``None`` when it has none).

    Example:
        >>> json_event_time()(b'{"car_id":"car-1","ts":1700000000000,"score":0.5}')
        1700000000000
        >>> json_event_time()(b"not json") is None
        True
    """
    decoder: Any = msgspec.json.Decoder(
        msgspec.defstruct("Timed", [("time", int)], rename={"time": time_field})
    )

    def read(value: bytes) -> int | None:
        try:
            return int(decoder.decode(value).time)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    return read


def clean_event_time(at: int) -> Callable[[bytes], int | None]:
    """Reads the event time (ms) of a clean record: 8 bytes at ``at`` (`CleanCodec.offset`).

    Example:
        >>> read = clean_event_time(9)
        >>> read(bytes(9) + (1234).to_bytes(8, "little") + b"rest"), read(b"short")
        (1234, None)
    """
    end = at + 8

    def read(value: bytes) -> int | None:
        if len(value) < end:
            return None
        return int.from_bytes(value[at:end], "little", signed=True)

    return read


# ---- offering a rate and reading the outputs live -------------------------------------------


@dataclass
class ProbeRun:
    """What one `LatencyProbe.run` saw.

    Attributes:
        latencies: receive time minus event time (ms) of every output in the window.
        appended: LogAppendTime minus event time (ms) of the same outputs (empty unless the
            output topic stamps LogAppendTime): the reader's own fetch wait left out.
        window: measured seconds.
        target_per_s: the rate asked for.
        offered_per_s: the rate actually offered during the window.
        received_per_s: outputs received per second during the window (any event time).
        min_ratio: received / offered below which the run counts as saturated.
        first_output_s: seconds from the first offered record to the first output (start-up).
    """

    latencies: list[float] = field(default_factory=list)
    appended: list[float] = field(default_factory=list)
    window: float = 0.0
    target_per_s: float = 0.0
    offered_per_s: float = 0.0
    received_per_s: float = 0.0
    min_ratio: float = 0.95
    first_output_s: float | None = None

    @property
    def saturated(self) -> bool:
        """The system fell behind the offered rate: the figures are a backlog, not a latency."""
        return self.offered_per_s <= 0 or self.received_per_s < self.min_ratio * self.offered_per_s

    @property
    def generator_ok(self) -> bool:
        """The probe itself offered the rate asked for."""
        return self.offered_per_s >= self.min_ratio * self.target_per_s

    def summary(self) -> dict[str, Any]:
        """`percentiles` of the latencies, the rates and the saturation verdict."""
        out = percentiles(self.latencies)
        appended = percentiles(self.appended)
        out |= {
            "appended_p50_ms": appended["p50_ms"],
            "appended_p99_ms": appended["p99_ms"],
            "offered_per_s": round(self.offered_per_s, 1),
            "received_per_s": round(self.received_per_s, 1),
            "saturated": self.saturated,
            "generator_ok": self.generator_ok,
            "first_output_s": self.first_output_s,
        }
        return out


@dataclass
class _State:
    stop: threading.Event = field(default_factory=threading.Event)
    first_output: threading.Event = field(default_factory=threading.Event)
    offer_done: threading.Event = field(default_factory=threading.Event)
    first_offered_at: float = 0.0
    first_output_at: float = 0.0
    window_start_ms: float = 0.0
    window_end_ms: float = 0.0
    offered_in_window: int = 0
    received_in_window: int = 0
    run: ProbeRun = field(default_factory=ProbeRun)


@dataclass
class LatencyProbe:
    """Offers ``rate`` events/s to ``input_topic`` and measures event time -> output received.

    Args:
        kafka: the cluster.
        input_topic: where the probe produces (the system under test reads it).
        output_topic: where the system writes one output per input (the probe reads it).
        partitions: partitions of the output topic.
        records: ``(prefix, tails, keys)``: every offered record is ``prefix`` (the bytes
            before the event time), the event time (8 bytes, little-endian) and the next of
            ``tails``, keyed by the matching key.
        event_time: reads an output record's event time (ms).
        rate: offered events per second.
        seconds: measured seconds (after ``warmup``).
        warmup: seconds of the rate before the window opens.
        timeout: most seconds a run may take.
        min_ratio: outputs received / offered below which a run is saturated.
    """

    kafka: KafkaSettings
    input_topic: str
    output_topic: str
    partitions: int
    records: tuple[bytes, list[bytes], list[bytes]]
    event_time: Callable[[bytes], int | None]
    rate: int
    seconds: float
    warmup: float
    timeout: float
    min_ratio: float = 0.95

    def run(self, system: Callable[[], Any]) -> tuple[ProbeRun, Any]:
        """Offer and read while ``system()`` runs; it must stop by itself once input stops.

        Returns:
            What the probe saw, and what ``system()`` returned.
        """
        state = _State(run=ProbeRun(target_per_s=self.rate, min_ratio=self.min_ratio))
        start = end_offsets(self.kafka, self.output_topic)
        reader = threading.Thread(target=self._read, args=(state, start), name="probe-read")
        offer = threading.Thread(target=self._offer, args=(state,), name="probe-offer")
        reader.daemon = offer.daemon = True
        reader.start()
        offer.start()
        try:
            answer = system()
            state.offer_done.wait(self.timeout)
        finally:
            state.stop.set()
            offer.join(15)
            reader.join(15)
        run = state.run
        run.window = max(0.0, (state.window_end_ms - state.window_start_ms) / 1000)
        if run.window > 0:
            run.offered_per_s = state.offered_in_window / run.window
            run.received_per_s = state.received_in_window / run.window
        if state.first_output_at:
            run.first_output_s = round(state.first_output_at - state.first_offered_at, 3)
        return run, answer

    def _offer(self, state: _State) -> None:
        """A trickle until the first output, then ``rate`` for ``warmup + seconds``."""
        before, tails, keys = self.records
        producer = make_producer(self.kafka, linger_ms=0)
        topic, n = self.input_topic, len(tails)
        i = 0
        began = time.monotonic()
        state.first_offered_at = began

        def send(count: int) -> None:
            nonlocal i
            ts = int(time.time() * 1000)
            prefix = before + ts.to_bytes(8, "little", signed=True)
            for _ in range(count):
                j = i % n
                with contextlib.suppress(BufferError):
                    producer.produce(topic, prefix + tails[j], keys[j], timestamp=ts)
                i += 1
            producer.poll(0)

        try:
            while not state.first_output.is_set():
                if state.stop.is_set() or time.monotonic() - began > self.timeout:
                    return
                send(1)
                state.first_output.wait(1 / _TRICKLE)
            per_tick = self.rate * _TICK
            rate_began = time.monotonic()
            opens = rate_began + self.warmup
            closes = opens + self.seconds
            sent = 0
            at_open: int | None = None
            while not state.stop.is_set():
                now = time.monotonic()
                if at_open is None and now >= opens:
                    at_open = sent
                    state.window_start_ms = time.time() * 1000
                if now >= closes:
                    state.window_end_ms = time.time() * 1000
                    state.offered_in_window = sent - (at_open or 0)
                    break
                due = int((now - rate_began) / _TICK * per_tick) + int(per_tick)
                if sent < due:
                    send(due - sent)
                    sent = due
                time.sleep(max(0.0, rate_began + (sent / per_tick) * _TICK - time.monotonic()))
        finally:
            producer.flush(10)
            state.offer_done.set()

    def _read(self, state: _State, start: dict[int, int]) -> None:
        consumer = make_consumer(
            self.kafka,
            f"lakeless-bench-probe-{uuid.uuid4().hex[:8]}",
            fetch_wait_max_ms=1,
            fetch_min_bytes=1,
        )
        consumer.assign([TopicPartition(self.output_topic, p, o) for p, o in start.items()])
        event_time = self.event_time
        run = state.run
        try:
            while not state.stop.is_set():
                # poll returns on the first record; consume with a timeout would wait for all
                # 10,000 (or the timeout): that wait is the reader's, not the system's.
                first = consumer.poll(0.05)
                if first is None:
                    continue
                now_ms = time.time() * 1000
                messages = [first, *consumer.consume(num_messages=10_000, timeout=0)]
                if not state.first_output.is_set():
                    state.first_output_at = time.monotonic()
                    state.first_output.set()
                lo, hi = state.window_start_ms, state.window_end_ms
                if lo and now_ms >= lo and (not hi or now_ms <= hi):
                    state.received_in_window += len(messages)
                if not lo:
                    continue
                for message in messages:
                    if message.error() is not None:
                        continue
                    ts = event_time(message.value())
                    if ts is None or ts < lo or (hi and ts >= hi):
                        continue
                    run.latencies.append(now_ms - ts)
                    kind, stamp = message.timestamp()
                    if kind == TIMESTAMP_LOG_APPEND_TIME:
                        run.appended.append(float(stamp - ts))
        finally:
            consumer.close()


def repeated_latency(name: str, runs: Sequence[ProbeRun], **extra: Any) -> BenchResult:
    """One result from repeated `ProbeRun` s: medians of p50 and p99, every run, the spread.

    ``saturated`` is true when any run was; ``events`` and ``seconds`` are the samples and
    window of the run with the median p99.

    Example:
        >>> runs = [ProbeRun([1.0, 2.0, 3.0], window=1.0, offered_per_s=3, received_per_s=3)]
        >>> result = repeated_latency("relay-latency", runs * 3)
        >>> result.extra["p50_ms"], result.extra["spread_p99"], result.extra["saturated"]
        (2.0, 0.0, False)
    """
    summaries = [run.summary() for run in runs]
    measured = [i for i, s in enumerate(summaries) if s["p99_ms"] is not None]
    p50s = [summaries[i]["p50_ms"] for i in measured]
    p99s = [summaries[i]["p99_ms"] for i in measured]
    if not measured:
        nothing = {"p50_ms": None, "p99_ms": None, "saturated": True, "repeats": len(runs)}
        return BenchResult(name, 0, 0.0, {**nothing, "runs": summaries, **extra})
    order = sorted(measured, key=lambda i: summaries[i]["p99_ms"])
    chosen = order[len(order) // 2]
    saturated = [s["saturated"] for s in summaries]
    return BenchResult(
        name,
        summaries[chosen]["samples"],
        runs[chosen].window,
        {
            "p50_ms": round(median(p50s), 2),
            "p99_ms": round(median(p99s), 2),
            "max_ms": summaries[chosen]["max_ms"],
            "appended_p99_ms": summaries[chosen]["appended_p99_ms"],
            "repeats": len(runs),
            "runs_p50_ms": p50s,
            "runs_p99_ms": p99s,
            "spread_p50": spread(p50s),
            "spread_p99": spread(p99s),
            "offered_per_s": [s["offered_per_s"] for s in summaries],
            "received_per_s": [s["received_per_s"] for s in summaries],
            "saturated": any(saturated),
            "runs_saturated": saturated,
            "generator_ok": all(s["generator_ok"] for s in summaries),
            **extra,
        },
    )


# ---- the relay: the scorer's loop and clients without the model -----------------------------


class RelayStep(BaseStep):
    """Re-produces every record unchanged to ``output`` (stamped now, as the scorer's are)."""

    name = "relay"

    def __init__(self, output: str) -> None:
        self.output = output

    def process(self, messages: list[Message]) -> BatchResult:
        """One output per input: the same value and key."""
        out = self.output
        return BatchResult([(out, m.value(), m.key(), 0, None) for m in messages])


def _relay_worker(
    settings: Settings, config: LoopConfig, output: str, limits: RunLimits, results: Any
) -> None:
    try:
        stats = BatchLoop(settings, config, RelayStep(output)).run(limits)
    except BaseException as exc:
        results.put((None, f"{type(exc).__name__}: {exc}"))
        raise
    results.put((stats.received, None))


def run_relay(
    settings: Settings, config: LoopConfig, output: str, limits: RunLimits, timeout: float
) -> int:
    """Run `RelayStep` in a spawned process (as the scorer runs); the records it relayed.

    Raises:
        RuntimeError: the relay failed or did not finish within ``timeout`` seconds.
    """
    context = mp.get_context("spawn")
    results: Any = context.Queue()
    worker = context.Process(
        target=_relay_worker, args=(settings, config, output, limits, results), name="relay"
    )
    worker.start()
    try:
        relayed, error = results.get(timeout=timeout)
    except queue.Empty:
        relayed, error = None, f"no answer in {timeout:.0f} s"
    finally:
        worker.join(30)
        if worker.is_alive():
            worker.kill()
            worker.join(5)
    if error is not None:
        raise RuntimeError(f"relay failed: {error}")
    return int(relayed)


# ---- Kafka's own end-to-end latency tool ----------------------------------------------------


def parse_end_to_end_latency(output: str) -> dict[str, float]:
    r"""``avg_ms``, ``p50_ms``, ``p99_ms``, ``p999_ms`` from EndToEndLatency's last lines.

    The tool floors every latency to whole milliseconds before taking its percentiles.

    Example:
        >>> parse_end_to_end_latency(
        ...     "0\t35.2\n1000\t1.1\nAvg latency: 1.2841 ms\n"
        ...     "Percentiles: 50th = 1, 99th = 3, 99.9th = 7\n"
        ... )
        {'avg_ms': 1.2841, 'p50_ms': 1.0, 'p99_ms': 3.0, 'p999_ms': 7.0}

    Raises:
        ValueError: no summary in ``output``.
    """
    found = _E2E_SUMMARY.search(output)
    if found is None:
        raise ValueError(f"no summary in EndToEndLatency's output:\n{output[-2000:]}")
    return {
        "avg_ms": float(found["avg"]),
        "p50_ms": float(found["p50"]),
        "p99_ms": float(found["p99"]),
        "p999_ms": float(found["p999"]),
    }


def kafka_e2e_latency(
    kafka: KafkaSettings,
    topic: str,
    records: int,
    record_size: int,
    key_size: int,
    timeout: float,
) -> dict[str, Any]:
    """Run EndToEndLatency once (``acks=all``, as lakeless' producers): its parsed summary.

    Raises:
        lakeless.errors.StackError: the tool failed.
        ValueError: its output had no summary.
    """
    from lakeless.bench._harness import java_client_properties
    from lakeless.stack._kafka import run_kafka_tool

    with tempfile.TemporaryDirectory(prefix="lakeless-e2e-") as tmp:
        config = Path(tmp) / "client.properties"
        props = java_client_properties(kafka)
        config.write_text(
            "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())
        )
        began = time.monotonic()
        output = run_kafka_tool(
            _E2E_MAIN,
            "--bootstrap-server",
            kafka.bootstrap_servers,
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--producer-acks",
            "all",
            "--record-size",
            str(record_size),
            "--record-key-size",
            str(key_size),
            "--command-config",
            str(config),
            timeout=timeout,
        )
        wall = time.monotonic() - began
    return {**parse_end_to_end_latency(output), "records": records, "wall_s": round(wall, 3)}


def repeated_e2e(runs: Sequence[dict[str, Any]], **extra: Any) -> BenchResult:
    """`KAFKA_E2E` from repeated `kafka_e2e_latency` summaries (medians, runs, spread).

    Example:
        >>> run = {"avg_ms": 1.2, "p50_ms": 1.0, "p99_ms": 3.0, "p999_ms": 7.0, "records": 10,
        ...        "wall_s": 2.0}
        >>> repeated_e2e([run, {**run, "p99_ms": 4.0}]).extra["p99_ms"]
        3.5
    """
    if not runs:
        return BenchResult(KAFKA_E2E, 0, 0.0, {"failed": True, **extra})
    p50s = [r["p50_ms"] for r in runs]
    p99s = [r["p99_ms"] for r in runs]
    return BenchResult(
        KAFKA_E2E,
        int(median(r["records"] for r in runs)),
        float(median(r["records"] * r["avg_ms"] / 1000 for r in runs)),
        {
            "p50_ms": round(median(p50s), 2),
            "p99_ms": round(median(p99s), 2),
            "p999_ms": round(median(r["p999_ms"] for r in runs), 2),
            "avg_ms": round(median(r["avg_ms"] for r in runs), 4),
            "repeats": len(runs),
            "runs_p50_ms": p50s,
            "runs_p99_ms": p99s,
            "runs_avg_ms": [r["avg_ms"] for r in runs],
            "spread_p50": spread(p50s),
            "spread_p99": spread(p99s),
            "spread_avg": spread([r["avg_ms"] for r in runs]),
            "resolution_ms": 1,
            "tool": _E2E_MAIN,
            **extra,
        },
    )
