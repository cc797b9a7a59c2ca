"""The score suite's results: path names, steady rates, latency results, the goals, the report.

`lakeless.bench._score` describes the paths; this module names them (`SCORE_PATHS`,
`LATENCY_PATHS`), turns what a run measured into `BenchResult` s and the issue's `GOALS`, and
renders the report (`ScoreBenchReport`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from confluent_kafka import TopicPartition

from lakeless.bench._jvm import STREAMS_BATCHED, STREAMS_PER_RECORD
from lakeless.bench._latency import KAFKA_E2E, RELAY, percentiles
from lakeless.bench._result import BenchReport, BenchResult
from lakeless.config import KafkaSettings
from lakeless.kafka import make_consumer

if TYPE_CHECKING:
    from lakeless.score import ScoreStats

__all__ = [
    "CEILING",
    "GOALS",
    "HTTP",
    "KERAS",
    "LATENCY",
    "LATENCY_PATHS",
    "QUIX",
    "SCORE_1P",
    "SCORE_2P",
    "SCORE_PATHS",
    "ScoreBenchReport",
    "goals",
    "latency_lines",
    "latency_result",
    "run_watched",
    "steady_rate",
]

#: Name of the ceiling result.
CEILING: Final = "raw-consume"
SCORE_1P: Final = "lakeless-score-1p"
SCORE_2P: Final = "lakeless-score-2p"
KERAS: Final = "naive-keras-per-record"
QUIX: Final = "quixstreams-per-record"
HTTP: Final = "http-model-server"
LATENCY: Final = "latency"
#: Every throughput result the suite reports, in order (then `LATENCY_PATHS`).
SCORE_PATHS: Final = (
    CEILING, SCORE_1P, SCORE_2P, KERAS, QUIX, HTTP, STREAMS_PER_RECORD, STREAMS_BATCHED
)  # fmt: skip
#: The latency results, in order: lakeless' scorer, then its floors.
LATENCY_PATHS: Final = (LATENCY, RELAY, KAFKA_E2E)
#: The issue's goals: (what, numerator, denominator result or metric, op, bound). A latency
#: result over another latency result is the ratio of their ``p99_ms``.
GOALS: Final = (
    ("1p vs raw-consume", SCORE_1P, CEILING, ">=", 0.5),
    ("1p vs quixstreams", SCORE_1P, QUIX, ">=", 5.0),
    ("1p vs kafka-streams-per-record", SCORE_1P, STREAMS_PER_RECORD, ">=", 1.0),
    ("1p vs kafka-streams-batched", SCORE_1P, STREAMS_BATCHED, ">=", 1.0),
    ("p99 latency ms", LATENCY, "p99_ms", "<=", 25.0),
    ("p99 latency vs relay", LATENCY, RELAY, "<=", 1.5),
)
_WATCH_INTERVAL: Final = 0.02


def steady_rate(samples: Sequence[tuple[float, int]], target: int) -> tuple[int, float]:
    """Events and seconds of the steady part of a run, from ``(time, total done)`` samples.

    The rate runs from the first sample that saw progress to the first that reached
    ``target`` (or the last one), so start-up before the first progress is left out.

    Example:
        >>> steady_rate([(0.0, 0), (1.0, 0), (1.5, 100), (2.5, 600), (3.5, 1100)], 1100)
        (1000, 2.0)
    """
    started = next(((t, n) for t, n in samples if n > 0), None)
    if started is None:
        return 0, 0.0
    done = next(((t, n) for t, n in samples if n >= target), samples[-1])
    return done[1] - started[1], done[0] - started[0]


def latency_result(
    latencies_ms: Sequence[float], seconds: float, name: str = LATENCY, **extra: Any
) -> BenchResult:
    """A latency result of one run: outputs measured, seconds, ``p50_ms``, ``p99_ms``, ``max_ms``.

    Example:
        >>> result = latency_result([float(i) for i in range(1, 101)], 1.0)
        >>> result.events, result.extra["p50_ms"], result.extra["p99_ms"]
        (100, 50.5, 99.01)
    """
    stats = percentiles(latencies_ms)
    samples = stats.pop("samples")
    return BenchResult(name, samples, seconds, {**stats, **extra})


def goals(results: Sequence[BenchResult]) -> list[dict[str, Any]]:
    """Every `GOALS` entry with its measured value and whether it is met (``None``: unmeasured).

    Example:
        >>> rows = goals([BenchResult(CEILING, 100, 1.0), BenchResult(SCORE_1P, 60, 1.0)])
        >>> rows[0]["value"], rows[0]["met"], rows[1]["met"]
        (0.6, True, None)
    """
    by_name = {r.name: r for r in results}
    out = []
    for what, name, other, op, bound in GOALS:
        value: float | None = None
        result = by_name.get(name)
        if result is not None and name in LATENCY_PATHS:
            if other in LATENCY_PATHS:
                mine = result.extra.get("p99_ms")
                floor = by_name[other].extra.get("p99_ms") if other in by_name else None
                if mine is not None and floor:
                    value = round(mine / floor, 3)
            elif (measured := result.extra.get(other)) is not None:
                value = float(measured)
        elif result is not None and other in by_name and by_name[other].events_per_s > 0:
            value = round(result.events_per_s / by_name[other].events_per_s, 3)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        row = {"goal": what, "value": value, "op": op, "bound": bound, "met": met}
        if result is not None and result.extra.get("saturated"):
            row["saturated"] = True
        out.append(row)
    return out


def latency_lines(results: Sequence[BenchResult]) -> list[str]:
    """Human lines on the latency results: p50/p99 of each, the ratios, saturation.

    Example:
        >>> rs = [
        ...     BenchResult(LATENCY, 10, 1.0, {"p50_ms": 6.0, "p99_ms": 12.0}),
        ...     BenchResult(RELAY, 10, 1.0, {"p50_ms": 3.0, "p99_ms": 8.0}),
        ... ]
        >>> latency_lines(rs)
        ['p50/p99 ms: latency 6.0/12.0, relay-latency 3.0/8.0; latency/relay p50 2.0, p99 1.5']
    """
    by_name = {r.name: r for r in results if r.name in LATENCY_PATHS}
    if not by_name:
        return []
    shown = [
        f"{name} {r.extra.get('p50_ms')}/{r.extra.get('p99_ms')}" for name, r in by_name.items()
    ]
    line = "p50/p99 ms: " + ", ".join(shown)
    mine, relay = by_name.get(LATENCY), by_name.get(RELAY)
    if mine is not None and relay is not None:
        ratios = [
            f"{p} {round(mine.extra[k] / relay.extra[k], 2)}"
            for p, k in (("p50", "p50_ms"), ("p99", "p99_ms"))
            if mine.extra.get(k) is not None and relay.extra.get(k)
        ]
        if ratios:
            line += "; latency/relay " + ", ".join(ratios)
    lines = [line]
    for name, r in by_name.items():
        if r.extra.get("generator_ok") is False:
            lines.append(
                f"{name}: the probe did not offer the rate asked for (offered/s "
                f"{r.extra.get('offered_per_s')} for {r.extra.get('target_per_s')}): the "
                "machine is short of CPU"
            )
        if r.extra.get("saturated"):
            offered = r.extra.get("offered_per_s")
            received = r.extra.get("received_per_s")
            lines.append(
                f"SATURATED: {name} fell behind the offered rate (outputs/s {received} for "
                f"offered {offered}): its figures are a backlog, not a latency"
            )
    return lines


@dataclass
class ScoreBenchReport(BenchReport):
    """A `BenchReport` whose dict also carries the issue's ``goals``."""

    def to_dict(self) -> dict[str, Any]:
        """`BenchReport.to_dict` plus ``goals`` (see `goals`)."""
        return {**super().to_dict(), "goals": goals(self.results)}

    def table(self) -> Any:
        """The rich table, with the goals and the latency in its caption."""
        table = super().table()
        lines = [
            f"{g['goal']}: {g['value']} (goal {g['op']} {g['bound']}: "
            f"{'met' if g['met'] else 'not met' if g['met'] is not None else 'unmeasured'}"
            f"{', saturated' if g.get('saturated') else ''})"
            for g in goals(self.results)
        ]
        table.caption = "\n".join(
            [f"{table.caption}; " + "; ".join(lines), *latency_lines(self.results)]
        )
        return table


# ---- watching a consumer group's progress ---------------------------------------------------


class _CommitWatch:
    """Samples the sum of a group's committed offsets on ``topic`` every 20 ms (a thread)."""

    def __init__(self, kafka: KafkaSettings, group: str, topic: str, partitions: int, target: int):
        self.consumer = make_consumer(kafka, group)  # never subscribes: only reads offsets
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.target = target
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)

    def __enter__(self) -> _CommitWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                committed = self.consumer.committed(self.partitions, timeout=5)
            except Exception:  # a slow broker: try again
                continue
            total = sum(max(tp.offset, 0) for tp in committed)
            self.samples.append((time.monotonic(), total))
            if total >= self.target:
                return
            self._stop.wait(_WATCH_INTERVAL)

    def rate(self) -> tuple[int, float]:
        return steady_rate(self.samples or [(0.0, 0)], self.target)


def run_watched(
    kafka: KafkaSettings,
    group: str,
    topic: str,
    partitions: int,
    target: int,
    score: Callable[[], ScoreStats],
) -> tuple[ScoreStats, int, float, float]:
    """Run ``score`` (scorers in consumer group ``group``) while watching its commits on ``topic``.

    Returns:
        ``score``'s stats; the events and seconds from the first commit to the one that reached
        ``target`` (start-up and group join left out; when everything was committed at once, as
        on a tiny topic, every scored event over the wall time); the wall seconds.
    """
    began = time.monotonic()
    with _CommitWatch(kafka, group, topic, partitions, target) as watch:
        stats = score()
    wall = time.monotonic() - began
    events, seconds = watch.rate()
    if events <= 0:  # everything committed in one batch (tiny topics): wall time
        events, seconds = stats.events, wall
    return stats, events, seconds, wall
