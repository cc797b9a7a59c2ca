"""`DemoSettings`: ``LAKELESS_DEMO__*`` and the options of ``lakeless demo``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lakeless._options import StageOptions

__all__ = ["DemoSettings"]


class DemoSettings(StageOptions):
    """What the demo simulates and for how long (``duration`` unset: until Ctrl-C).

    The pipeline (``--pipeline``) picks the devices: the car fleet, or the pumps example.
    """

    cars: int = Field(default=100, ge=1, le=100_000, description="Devices (cars, pumps).")
    warmup: float = Field(
        default=20.0, gt=0, le=24 * 60, description="Minutes of history to train on."
    )
    failure_rate: float = Field(
        default=12.0, ge=0, le=3600, description="Failures per device per hour."
    )
    epochs: int = Field(default=10, ge=1, le=10_000, description="Training epochs.")
    duration: float | None = Field(
        default=None, gt=0, description="Stop after S seconds (default: Ctrl-C)."
    )
    seed: int = Field(default=7, ge=0, description="Seed of the simulated devices.")
    dashboard_port: int = Field(default=8080, ge=1, le=65535, description="Dashboard port.")
    twin_port: int = Field(default=8081, ge=1, le=65535, description="Twin HTTP API port.")
    summary_every: float = Field(
        default=5.0, gt=0, description="Seconds between two progress lines."
    )
    brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Kafka nodes of the demo's stack (3: replication 3, min ISR 2).",
    )
    secure: bool = Field(
        default=False,
        description="SASL_SSL with an ACL'd principal per stage, MQTT over TLS, and a bearer "
        "token on the dashboard and the twin API.",
    )
    keep_stack: bool = Field(
        default=False, description="Leave Kafka and Mosquitto running at the end."
    )
    json_report: Path | None = Field(
        default=None, description="Write the final report as JSON to this file."
    )
