"""The score suite's latency paths: lakeless' scorer, a relay with no model, Kafka's own tool.

What they measure and how is told in `lakeless.bench._score` (``latency``, ``relay-latency``,
``kafka-e2e-latency``); the probe itself is `lakeless.bench._latency.LatencyProbe`. Each path
is a function of the suite's run (`lakeless.bench._score._ScoreRun`: its broker, topics,
settings and consumer groups).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lakeless.bench._latency import (
    KAFKA_E2E,
    RELAY,
    LatencyProbe,
    ProbeRun,
    clean_event_time,
    json_event_time,
    kafka_e2e_latency,
    repeated_e2e,
    repeated_latency,
    run_relay,
)
from lakeless.bench._result import BenchResult
from lakeless.bench._rows import encode_clean_rows
from lakeless.bench._score_report import LATENCY
from lakeless.bench._score_settings import MODEL
from lakeless.errors import LakelessError
from lakeless.fleet._schema import SCHEMA
from lakeless.lifecycle import RunLimits
from lakeless.schema import CleanCodec

if TYPE_CHECKING:
    from lakeless.bench._score import _ScoreRun

__all__ = ["latencies"]

logger = logging.getLogger(__name__)


def latencies(run: _ScoreRun) -> list[BenchResult]:
    """`LATENCY_PATHS`, interleaved ``latency_repeats`` times (scorer, relay, Kafka's)."""
    from lakeless.fleet import Fleet

    bench = run.bench
    batch = Fleet(bench.cars, seed=bench.seed).step()
    template = encode_clean_rows(batch)
    keys = [car.encode() for car in batch.car_ids]
    # Every offered record: what precedes the time, the time (stamped when sent), the rest of
    # one of these.
    at = CleanCodec(SCHEMA).offset(SCHEMA.time)
    records = (template[0][:at], [value[at + 8 :] for value in template], keys)
    scorer: list[ProbeRun] = []
    relay: list[ProbeRun] = []
    e2e: list[dict[str, Any]] = []
    e2e_error: str | None = None
    logger.info(
        "latency: %d events/s for %.0f s (batch_ms=%d), %d repeat(s)",
        bench.latency_rate,
        bench.latency_seconds,
        bench.latency_batch_ms,
        bench.latency_repeats,
    )
    if not bench.quick:
        # Unmeasured: a first run meets cold topics, a cold broker (its JIT compiling on the
        # same cores) and a fresh process; its tail was 4-10x the later runs' (p99 578 ms,
        # then 66 and 41 ms).
        logger.info("latency: one unmeasured run of the scorer and of the relay first")
        _scorer_latency(run, records)
        _relay_latency(run, records)
    for i in range(bench.latency_repeats):
        scorer.append(_scorer_latency(run, records))
        relay.append(_relay_latency(run, records))
        logger.info(
            "latency run %d: scorer p99 %s ms, relay p99 %s ms",
            i + 1,
            scorer[-1].summary()["p99_ms"],
            relay[-1].summary()["p99_ms"],
        )
        try:
            e2e.append(
                kafka_e2e_latency(
                    run.kafka,
                    run.topics.e2e,
                    bench.e2e_records,
                    len(template[0]),
                    len(keys[0]),
                    bench.timeout,
                )
            )
        except (LakelessError, ValueError, OSError) as exc:
            logger.warning("%s failed: %s", KAFKA_E2E, exc)
            e2e_error = str(exc)[-500:]
    common = {
        "target_per_s": bench.latency_rate,
        "batch_ms": bench.latency_batch_ms,
        "linger_ms": 0,
        "partitions": bench.partitions,
    }
    mine = repeated_latency(
        LATENCY,
        scorer,
        **common,
        note="event time -> score record received (one scorer process)",
    )
    floor = repeated_latency(
        RELAY,
        relay,
        **common,
        note="event time -> relayed record received (same loop and clients, no model)",
    )
    kafka = repeated_e2e(
        e2e,
        record_bytes=len(template[0]),
        note="Kafka's EndToEndLatency: one record at a time, acks=all, whole ms",
        **({"reason": e2e_error} if e2e_error else {}),
    )
    for name, other in ((RELAY, floor), (KAFKA_E2E, kafka)):
        for p in ("p50_ms", "p99_ms"):
            if mine.extra.get(p) is not None and other.extra.get(p):
                key = f"ratio_{p[:3]}_to_{name.removesuffix('-latency').replace('-', '_')}"
                mine.extra[key] = round(mine.extra[p] / other.extra[p], 3)
    for result in (mine, floor):
        if result.extra.get("saturated"):
            logger.warning(
                "%s is saturated: outputs/s %s for offered %s: a backlog, not a latency",
                result.name,
                result.extra.get("received_per_s"),
                result.extra.get("offered_per_s"),
            )
    return [mine, floor, kafka]


def _probe(run: _ScoreRun, records: Any, clean: str, out: str, event_time: Any) -> LatencyProbe:
    bench = run.bench
    return LatencyProbe(
        run.kafka,
        clean,
        out,
        bench.partitions,
        records,
        event_time,
        rate=bench.latency_rate,
        seconds=bench.latency_seconds,
        warmup=bench.latency_warmup,
        timeout=bench.timeout,
        min_ratio=bench.latency_min_ratio,
    )


def _latency_config(run: _ScoreRun, group: str) -> Any:
    from lakeless.score import ScoreSettings

    return ScoreSettings(
        group_id=run.group(group),
        model=MODEL,
        log_interval=0,
        all_scores=True,
        batch_ms=run.bench.latency_batch_ms,
        linger_ms=0,
    )


def _scorer_latency(run: _ScoreRun, records: Any) -> ProbeRun:
    from lakeless.score import run_processes

    config = _latency_config(run, "latency")
    topics = run.topics
    settings = run.settings(topics.latency_clean, topics.latency_scores, score=config)
    probe = _probe(
        run, records, topics.latency_clean, topics.latency_scores, json_event_time(SCHEMA.time)
    )
    limits = RunLimits(until_idle=1.0, timeout=run.bench.timeout)
    measured, _stats = probe.run(lambda: run_processes(settings, None, limits, 1))
    return measured


def _relay_latency(run: _ScoreRun, records: Any) -> ProbeRun:
    from lakeless.kafka import LoopConfig

    config = _latency_config(run, "relay")
    assert config.group_id is not None
    topics = run.topics
    loop = LoopConfig.from_options(
        config,
        group_id=config.group_id,
        topics=(topics.relay_in,),
        guarantee=config.guarantee,
        transaction_timeout_ms=config.transaction_timeout_ms,
    )
    probe = _probe(
        run,
        records,
        topics.relay_in,
        topics.relay_out,
        clean_event_time(len(records[0])),  # the time follows the records' prefix
    )
    limits = RunLimits(until_idle=1.0, timeout=run.bench.timeout)
    settings = run.settings()
    timeout = run.bench.timeout + 60
    measured, _relayed = probe.run(
        lambda: run_relay(settings, loop, topics.relay_out, limits, timeout)
    )
    return measured
