"""What ``lakeless bench score`` measures and how much: its settings, its error, its model.

The suite itself (every path it measures) is described in `lakeless.bench._score`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._harness import BenchError

__all__ = ["FULL_EVENTS", "MODEL", "QUICK_EVENTS", "ScoreBenchError", "ScoreBenchSettings"]

#: Events in the topic with ``--quick`` (the suite then takes under a minute).
QUICK_EVENTS: Final = 150_000
#: Events in the topic by default.
FULL_EVENTS: Final = 2_000_000
#: The name the run's model is registered and promoted under on its own models topic.
MODEL: Final = "bench-autoencoder"


class ScoreBenchError(BenchError):
    """The score benchmark could not run (no model, topic not filled, server not ready...)."""


class ScoreBenchSettings(BaseModel):
    """What the score suite measures and how much.

    Attributes:
        events: records in the pre-filled topic (raw consume, 1p and 2p read them all).
        quick: only recorded in the report (and picks the defaults of `for_mode`).
        partitions: partitions of every topic the suite creates.
        cars: simulated cars.
        seed: simulator and model seed.
        failure_rate: simulated failures per car per hour (some events are anomalies).
        train_rows: simulated rows the model is trained on.
        epochs: training epochs of the model.
        keras_sample: messages the naive Keras loop is timed on.
        quix_events: records Quix Streams scores (the first ones of the topic).
        http_events: records the model-server path scores.
        latency_rate: offered events per second of the latency measurement.
        latency_seconds: steady-state seconds the latency is measured over.
        latency_warmup: seconds after the first output before latency counts.
        latency_batch_ms: the scorer's ``batch_ms`` during the latency measurement.
        latency_repeats: interleaved runs of each latency path (median and spread).
        latency_min_ratio: outputs / offered events per second below which a latency run
            is saturated.
        e2e_records: records Kafka's EndToEndLatency sends per run.
        latency_only: measure only the latency paths (no pre-filled topic).
        quix: measure Quix Streams (builds its virtualenv on first use).
        quix_venv: where that virtualenv lives; ``None``:
            `lakeless.bench._score_peers.default_quix_venv`.
        timeout: most seconds one path may take.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: int = Field(default=FULL_EVENTS, ge=1)
    quick: bool = False
    partitions: int = Field(default=6, ge=1)
    cars: int = Field(default=1000, ge=1)
    seed: int = 1
    failure_rate: float = Field(default=2.0, ge=0)
    train_rows: int = Field(default=20_000, ge=100)
    epochs: int = Field(default=3, ge=1)
    keras_sample: int = Field(default=200, ge=1)
    quix_events: int = Field(default=200_000, ge=1)
    http_events: int = Field(default=1_000_000, ge=1)
    latency_rate: int = Field(default=20_000, ge=1)
    latency_seconds: float = Field(default=10.0, gt=0)
    latency_warmup: float = Field(default=2.0, ge=0)
    latency_batch_ms: int = Field(default=1, ge=1)
    latency_repeats: int = Field(default=3, ge=1)
    latency_min_ratio: float = Field(default=0.95, gt=0, le=1)
    e2e_records: int = Field(default=10_000, ge=1)
    latency_only: bool = False
    quix: bool = True
    quix_venv: Path | None = None
    timeout: float = Field(default=300.0, gt=0)

    @classmethod
    def for_mode(cls, quick: bool, events: int | None = None, **fields: Any) -> ScoreBenchSettings:
        """Settings for ``--quick`` or a full run; ``events`` overrides the mode's count."""
        count = events or (QUICK_EVENTS if quick else FULL_EVENTS)
        defaults: dict[str, Any] = {"timeout": 300.0}
        if quick:
            defaults = {
                "timeout": 60.0,
                "train_rows": 5000,
                "epochs": 1,
                "quix_events": 20_000,
                "keras_sample": 20,
                "latency_seconds": 4.0,
                "latency_warmup": 1.0,
                "latency_repeats": 1,
                "e2e_records": 2000,
            }
        defaults["quix_events"] = min(count, defaults.get("quix_events", 200_000))
        defaults["http_events"] = min(count, fields.pop("http_events", 1_000_000))
        return cls(events=count, quick=quick, **{**defaults, **fields})
