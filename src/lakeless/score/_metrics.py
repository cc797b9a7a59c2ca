"""Prometheus metrics of one scorer process (``--metrics-port``).

Each `ScoreMetrics` has its own registry, so several stages in one process (tests) do not
collide; with ``--processes N`` worker ``i`` serves on ``port + i``.

Metrics (prefix ``lakeless_score_``): ``events_total``, ``anomalies_total``, ``batches_total``,
``batch_size`` (histogram), ``inference_seconds`` (histogram), ``events_per_second`` (over the
last log interval), ``consumer_lag{topic,partition}`` (high watermark minus position, refreshed
every few seconds), ``model_version{model}`` (the live version).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["ScoreMetrics"]

_P = "lakeless_score_"


class ScoreMetrics:
    """The scorer's metrics; `serve` exposes them over HTTP."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(f"{_P}events", "Events scored and committed.", registry=r)
        self.anomalies = Counter(f"{_P}anomalies", "Anomalies produced.", registry=r)
        self.batches = Counter(f"{_P}batches", "Batches committed.", registry=r)
        self.rate = Gauge(f"{_P}events_per_second", "Events/s over the last interval.", registry=r)
        self.batch_size = Histogram(
            f"{_P}batch_size",
            "Records per batch.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000),
            registry=r,
        )
        self.inference = Histogram(
            f"{_P}inference_seconds",
            "Seconds of one scorer call (one batch).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.lag = Gauge(
            f"{_P}consumer_lag",
            "High watermark minus position, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.model_version = Gauge(
            f"{_P}model_version", "Version of the live model.", ["model"], registry=r
        )
        self._server: Any = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``port`` in a daemon thread."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server

    def close(self) -> None:
        """Stop the HTTP server, if any."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
