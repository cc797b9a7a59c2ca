"""`ScoreSettings`: ``LAKELESS_SCORE__*`` and the options of ``lakeless score``."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field

from lakeless._fields import OnnxThreads, RegistryTimeout, TopK
from lakeless._options import LoopOptions

__all__ = ["ScoreSettings"]


class ScoreSettings(LoopOptions):
    """The score stage's own settings (connections and the pipeline come from `Settings`).

    Example:
        >>> ScoreSettings(guarantee="exactly-once", instance="a").transactional_id("g", 2)
        'g.a.2'
    """

    model: str | None = Field(
        default=None,
        min_length=1,
        description="Registry name of the model to follow (default: the pipeline's, e.g. "
        "car-autoencoder).",
    )
    guarantee: Literal["at-least-once", "exactly-once"] = Field(
        default="at-least-once",
        description="at-least-once (commit after acks) or exactly-once (Kafka transactions; read "
        "outputs with isolation.level=read_committed).",
    )
    processes: int = Field(
        default=1, ge=1, le=64, description="Group members to run here (one core each)."
    )
    top_k: TopK = 3
    all_scores: bool = Field(default=False, description="Also write every score to NAME.scores.")
    threads: OnnxThreads = 1
    instance: str | None = Field(
        default=None,
        min_length=1,
        description="This scorer's name in its transactional.id (default: the host name); "
        "scorers on one host need distinct names with exactly-once. Also its static "
        "group.instance.id when set.",
    )
    via: str | None = Field(
        default=None,
        description="Score each batch with one request to this `lakeless serve` URL instead of "
        "embedding the model (outputs carry the server's model version).",
    )
    transaction_timeout_ms: int = Field(
        default=60_000, ge=1000, description="Producer transaction.timeout.ms (exactly-once)."
    )
    registry_timeout: RegistryTimeout = 30.0

    @property
    def exactly_once(self) -> bool:
        """Whether batches are Kafka transactions."""
        return self.guarantee == "exactly-once"

    def transactional_id(self, group_id: str, index: int = 0) -> str:
        """``<group>.<instance>.<index>``: stable across restarts of the same worker."""
        return f"{group_id}.{self.instance or socket.gethostname()}.{index}"
