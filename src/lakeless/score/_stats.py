"""`ScoreStats` and `ScoreMetrics`: what a scorer (or a group of scorer processes) committed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from lakeless.kafka import StageMetrics, StageStats

__all__ = ["ScoreMetrics", "ScoreStats"]


@dataclass
class ScoreStats(StageStats):
    """Committed counts: a batch counts once its outputs and offsets are committed.

    Attributes:
        anomalies: anomaly records written.
        by_model: events scored per ``name:version``.
        swaps: models swapped in while running (the first model included).

    Example:
        >>> a = ScoreStats(received=10, anomalies=1, batches=1)
        >>> a.by_model["car-ae:1"] += 10
        >>> b = ScoreStats(received=5, batches=1)
        >>> a.merge(b); a.events, a.batches
        (15, 2)
    """

    anomalies: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    swaps: int = 0

    @property
    def events(self) -> int:
        """Events scored and committed (``in``)."""
        return self.received

    def progress(self) -> dict[str, Any]:
        """The counts of a progress line."""
        return {**super().progress(), "anomalies": self.anomalies, "invalid": self.invalid}


class ScoreMetrics(StageMetrics):
    """The stage metrics plus ``anomalies_total``, ``inference_seconds`` and ``model_version``."""

    def __init__(self) -> None:
        super().__init__("score")
        p, r = self.prefix, self.registry
        self.anomalies = PromCounter(f"{p}anomalies", "Anomalies produced.", registry=r)
        self.inference = Histogram(
            f"{p}inference_seconds",
            "Seconds of one scorer call (one batch).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.model_version = Gauge(
            f"{p}model_version", "Version of the live model.", ["model"], registry=r
        )
