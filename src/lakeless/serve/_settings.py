"""`ServeSettings`: ``LAKELESS_SERVE__*`` and the options of ``lakeless serve``."""

from __future__ import annotations

from pydantic import Field

from lakeless._fields import ListenHost, ListenPort, OnnxThreads, RegistryTimeout, TopK
from lakeless._options import RunOptions

__all__ = ["ServeSettings"]


class ServeSettings(RunOptions):
    """The model server's own settings (connections and the pipeline come from `Settings`).

    ``count`` counts scoring requests; ``until_idle``, seconds without one.

    Example:
        >>> ServeSettings().port
        8000
    """

    model: str | None = Field(
        default=None,
        min_length=1,
        description="Registry name of the model to serve (default: the pipeline's).",
    )
    host: ListenHost = "127.0.0.1"
    port: ListenPort = 8000
    top_k: TopK = 3
    threads: OnnxThreads = 1
    poll_interval: float = Field(
        default=0.5, gt=0, le=60, description="Seconds between registry polls."
    )
    registry_timeout: RegistryTimeout = 30.0
    max_rows: int = Field(
        default=100_000, ge=1, description="Most events one request may carry (413 beyond)."
    )
