"""`DashboardSettings`: ``LAKELESS_DASHBOARD__*`` and the options of ``lakeless dashboard``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lakeless._fields import ListenHost, ListenPort
from lakeless._options import StageOptions

__all__ = ["DashboardSettings"]


class DashboardSettings(StageOptions):
    """The dashboard's own settings (connections and the pipeline come from `Settings`).

    The page shows one pipeline at a time (``--pipeline``: the one it opens with; the others,
    registered on the cluster, are a click away). A stage's consumer group is the one the
    stage uses: ``lakeless-<stage>`` for the car fleet, ``lakeless-<stage>.<pipeline>`` for
    the others, or that stage's ``group_id`` setting for the pipeline the settings name.

    Example:
        >>> DashboardSettings().port, DashboardSettings().train
        (8080, True)
    """

    host: ListenHost = "127.0.0.1"
    port: ListenPort = 8080
    twin_url: str | None = Field(
        default=None,
        description="The twin's database, read-only: sqlite:///path or postgresql://... "
        "(default: the twin's, LAKELESS_TWIN__URL or its SQLite file of each pipeline).",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="Registry name of the model the page follows and the train button trains "
        "(default: the pipeline's, e.g. car-autoencoder; for the opening pipeline only).",
    )
    collect: bool = Field(
        default=True, description="Read Kafka (off: a page fed by hand, for tests)."
    )
    interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between two readings of the offsets (and two page updates).",
    )
    rate_window: float = Field(default=3.0, gt=0, description="Seconds a rate is averaged over.")
    models_interval: float = Field(
        default=5.0, gt=0, description="Seconds between two registry refreshes."
    )
    pipelines_interval: float = Field(
        default=15.0, gt=0, description="Seconds between two looks for newly registered pipelines."
    )
    backfill: int = Field(
        default=20,
        ge=0,
        description="Anomalies per partition shown from before the dashboard started.",
    )
    max_anomalies: int = Field(default=500, ge=1, description="Anomalies kept for the feed.")
    max_entities: int = Field(
        default=2000, ge=1, description="Most entities the table lists (open episodes first)."
    )
    readings: int = Field(
        default=300, ge=1, le=10_000, description="Readings an entity's charts show."
    )
    train: bool = Field(
        default=True,
        description="Show the train button and accept POST /api/train (--no-train: read-only).",
    )
    train_minutes: float = Field(
        default=10.0, gt=0, description="Training window the page proposes."
    )
    train_epochs: int | None = Field(
        default=None,
        ge=1,
        description="Epochs of a training run started from the page (default: lakeless train's).",
    )
    timeout: float | None = Field(
        default=None, gt=0, description="Stop after S seconds (default: until SIGTERM)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or one JSON object per line."
    )
