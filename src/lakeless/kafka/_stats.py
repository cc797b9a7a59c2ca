"""What every stage counts, the same way: `StageStats` and its Prometheus `StageMetrics`.

Every long-running stage reports the same fields (``in``, ``out``, ``dead_lettered``,
``filtered``, ``invalid``, ``seconds``, ``stopped_by``, ...) plus its own; a batch counts once it
is committed. `StageMetrics` has its own registry per stage object (several stages in one
process, as in tests, do not collide) and serves ``/metrics`` on 127.0.0.1 unless told
otherwise.

Metrics (prefix ``lakeless_<stage>_``): ``events_total`` (records read and committed),
``outputs_total``, ``batches_total``, ``batch_size`` and ``batch_seconds`` (histograms),
``events_per_second`` (over the last progress interval), ``consumer_lag{topic,partition}``
(high watermark minus position, refreshed every few seconds).

Example:
    >>> stats = StageStats(received=10, produced=9, dead_lettered=1, seconds=2.0)
    >>> stats.to_dict()["in"], stats.to_dict()["rate"]
    (10, 5.0)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

if TYPE_CHECKING:
    from lakeless.config import HttpSettings

__all__ = ["ProgressLog", "StageMetrics", "StageStats"]

logger = logging.getLogger(__name__)


@dataclass
class StageStats:
    """Committed counts of one stage run (or of several, merged).

    Attributes:
        received: records read whose batch was committed (``in``).
        produced: output records acknowledged, every topic together (``out``).
        dead_lettered: inputs sent to a dead-letter topic.
        filtered: inputs dropped on purpose.
        invalid: inputs that could not be read, skipped and logged.
        batches: committed batches.
        commit_failures: commits refused because the group rebalanced (those records repeat).
        aborted: transactions aborted (exactly-once; their records are processed again).
        seconds: wall seconds of the run(s); for merged processes, the longest.
        active_seconds: from the first record read to the last commit (what `rate` divides
            by, so joining a group and waiting idle do not lower it).
        stopped_by: why the run stopped.
    """

    received: int = 0
    produced: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    invalid: int = 0
    batches: int = 0
    commit_failures: int = 0
    aborted: int = 0
    seconds: float = 0.0
    active_seconds: float = 0.0
    stopped_by: str = ""

    @property
    def rate(self) -> float:
        """Records per second while there were records to process."""
        seconds = self.active_seconds or self.seconds
        return self.received / seconds if seconds > 0 else 0.0

    def merge(self, other: StageStats) -> None:
        """Add another process's counts to these (same class)."""
        for item in dataclasses.fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name in ("seconds", "active_seconds"):
                setattr(self, item.name, max(mine, theirs))
            elif item.name == "stopped_by":
                self.stopped_by = mine or theirs
            elif isinstance(mine, dict):
                for key, value in theirs.items():  # not `update`: a Counter's would add twice
                    mine[key] = mine.get(key, 0) + value
            else:
                setattr(self, item.name, mine + theirs)

    def progress(self) -> dict[str, Any]:
        """The counts of a progress line."""
        return {"in": self.received, "out": self.produced, "batches": self.batches}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: the common fields first, then the stage's own."""
        common = {
            "in": self.received,
            "out": self.produced,
            "dead_lettered": self.dead_lettered,
            "filtered": self.filtered,
            "invalid": self.invalid,
            "batches": self.batches,
            "commit_failures": self.commit_failures,
            "aborted": self.aborted,
            "seconds": round(self.seconds, 3),
            "active_seconds": round(self.active_seconds, 3),
            "rate": round(self.rate, 1),
            "stopped_by": self.stopped_by,
        }
        base = {f.name for f in dataclasses.fields(StageStats)}
        for item in dataclasses.fields(self):
            if item.name not in base:
                value = getattr(self, item.name)
                common[item.name] = (
                    dict(sorted(value.items())) if isinstance(value, dict) else value
                )
        return common

    def to_json(self) -> str:
        """`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict())


class StageMetrics:
    """The Prometheus metrics of one stage object; `serve` exposes them over HTTP.

    Args:
        stage: the stage name, the metrics' prefix (``lakeless_<stage>_``).
    """

    def __init__(self, stage: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = f"lakeless_{stage.replace('-', '_')}_"
        self.prefix = p
        self.events = Counter(f"{p}events", "Records read and committed.", registry=r)
        self.outputs = Counter(f"{p}outputs", "Output records acknowledged.", registry=r)
        self.batches = Counter(f"{p}batches", "Batches committed.", registry=r)
        self.rate = Gauge(f"{p}events_per_second", "Records/s over the last interval.", registry=r)
        self.batch_size = Histogram(
            f"{p}batch_size",
            "Records per batch.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000),
            registry=r,
        )
        self.batch_seconds = Histogram(
            f"{p}batch_seconds",
            "Seconds from a batch's first record consumed to its commit.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.lag = Gauge(
            f"{p}consumer_lag",
            "High watermark minus position, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self._server: Any = None

    def refresh_lag(self, consumer: Any, assignment: list[Any]) -> None:
        """Set `lag` from ``consumer``'s positions and cached high watermarks."""
        from confluent_kafka import KafkaException

        if not assignment:
            return
        try:
            positions = consumer.position(assignment)
        except KafkaException:
            return
        for tp in positions:
            if tp.offset < 0:
                continue
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - tp.offset))

    def total_lag(self) -> int:
        """The sum of `lag` over every partition."""
        return int(sum(s.value for metric in self.lag.collect() for s in metric.samples))

    def serve(self, port: int, host: str = "127.0.0.1", access: HttpSettings | None = None) -> str:
        """Serve ``/metrics`` on ``host:port`` on a daemon thread; return its URL.

        Off loopback the endpoint needs a bearer token (`lakeless._http`), as every endpoint;
        ``/health`` and ``/healthz`` answer ``{"status": "ok"}`` without it (for probes).
        """
        from lakeless._http import HttpServer

        app = _with_health(make_asgi_app(registry=self.registry))
        self._server = HttpServer(app, host, port, name="metrics", access=access).start()
        return f"{self._server.url}/metrics"

    def close(self) -> None:
        """Stop the HTTP server, if any."""
        if self._server is not None:
            self._server.stop()
            self._server = None


def _with_health(metrics: Any) -> Any:
    """``metrics`` with ``/health`` and ``/healthz`` answering ``ok``.

    prometheus_client's app answers every path with the metrics, and the token guard lets the
    probe paths through: without this, ``/healthz`` would show the metrics to anyone.
    """
    from lakeless._http import _OPEN_PATHS

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") in _OPEN_PATHS:
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
            return
        await metrics(scope, receive, send)

    return app


class ProgressLog:
    """A stage's progress line every ``interval`` seconds, with the rate since the last one.

    Args:
        name: the stage (``"<name> progress: in=... rate=..."``).
        interval: seconds between two lines (0: never).
        metrics: whose ``events_per_second`` gauge gets the rate.
    """

    def __init__(self, name: str, interval: float, metrics: StageMetrics) -> None:
        self.name = name
        self.interval = interval
        self.metrics = metrics
        self._last = time.monotonic()
        self._count = 0

    def due(self) -> bool:
        """Whether a line is due now."""
        return bool(self.interval) and time.monotonic() - self._last >= self.interval

    def log(self, count: int, fields: dict[str, Any]) -> None:
        """Log ``fields`` and the rate of ``count`` (a running total) since the last line."""
        now = time.monotonic()
        rate = (count - self._count) / max(now - self._last, 1e-9)
        self._last, self._count = now, count
        self.metrics.rate.set(rate)
        summary = {**fields, "rate": round(rate, 1)}
        logger.info(
            "%s progress: %s",
            self.name,
            " ".join(f"{k}={v}" for k, v in summary.items()),
            extra={"data": summary},
        )
