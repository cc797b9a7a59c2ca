"""Settings every stage shares: run limits, reports, metrics, and the batch loop's knobs.

Each stage's settings model (``PreprocessSettings``, ``ScoreSettings``, ...) extends one of
these and is nested in the one `lakeless.config.Settings` under the stage's name, so a field
is set the same three ways: a default here, ``LAKELESS_<STAGE>__<FIELD>`` in the environment,
and the ``--field`` option the CLI derives from it (`lakeless._cli`). The ``description`` of a
field is its ``--help`` text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lakeless.lifecycle import RunLimits

__all__ = ["FROZEN", "LoopOptions", "RunOptions", "ServiceOptions", "StageOptions"]

FROZEN = ConfigDict(frozen=True, extra="forbid")


class StageOptions(BaseModel):
    """Base of every section of `lakeless.config.Settings`."""

    model_config = FROZEN


class RunOptions(StageOptions):
    """When a long-running command stops by itself, and what it reports."""

    count: int | None = Field(default=None, ge=1, description="Stop after N records.")
    timeout: float | None = Field(default=None, gt=0, description="Stop after S seconds.")
    until_idle: float | None = Field(
        default=None, gt=0, description="Stop after S seconds without input."
    )
    stats_json: Path | None = Field(
        default=None,
        description="Write the run's counts as JSON to this file at exit (also on SIGTERM).",
    )

    def limits(self) -> RunLimits:
        """The `RunLimits` of these settings."""
        return RunLimits(count=self.count, timeout=self.timeout, until_idle=self.until_idle)


class ServiceOptions(RunOptions):
    """A long-running command's metrics endpoint and log format."""

    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Serve Prometheus metrics on this port (0: off)."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface the metrics endpoint listens on."
    )
    log_interval: float = Field(
        default=10.0, ge=0, description="Seconds between two progress log lines (0: none)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or one JSON object per line."
    )


class LoopOptions(ServiceOptions):
    """The consumer group and batch loop of a stage (`lakeless.kafka.BatchLoop`)."""

    group_id: str | None = Field(
        default=None,
        min_length=1,
        description="Kafka consumer group (default: lakeless-<stage>, plus .<pipeline> for a "
        "pipeline other than the default).",
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Most records per batch.")
    poll_timeout: float = Field(
        default=0.5, gt=0, le=60, description="Seconds to wait for the first record of a batch."
    )
    batch_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="After the first record, ms to wait for more (0: take what is buffered, "
        "so that batches close at once at low rates).",
    )
    linger_ms: int = Field(default=5, ge=0, le=60_000, description="Producer linger.ms.")
    pipeline_depth: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Batches that may wait for Kafka's acknowledgements while the next one is "
        "read and processed (at-least-once; committed in order once acknowledged). 1: each "
        "batch is committed before the next is read.",
    )
    join_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds --until-idle waits for the first partition assignment before its "
        "clock starts.",
    )
    keepalive_after: float = Field(
        default=1.0,
        gt=0,
        description="Seconds of waiting for acknowledgements after which partitions are "
        "paused and the consumer polled (so the group keeps this member).",
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Consumer max.poll.interval.ms."
    )
