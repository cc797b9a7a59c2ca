"""`TwinSettings`: ``LAKELESS_TWIN__*`` and the options of ``lakeless twin``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pydantic import Field

from lakeless._options import LoopOptions

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DEFAULT_EPISODE_GAP_MS",
    "DEFAULT_KEEP_ANOMALIES",
    "DEFAULT_KEEP_READINGS",
    "TwinSettings",
]

#: Readings kept per entity (10 minutes at one event a second).
DEFAULT_KEEP_READINGS: Final = 600
#: Anomaly records kept per entity.
DEFAULT_KEEP_ANOMALIES: Final = 1000
#: Most event-time milliseconds between two anomalies of one episode.
DEFAULT_EPISODE_GAP_MS: Final = 60_000


class TwinSettings(LoopOptions):
    """The twin's own settings (connections and the pipeline come from `Settings`).

    Example:
        >>> from pathlib import Path
        >>> TwinSettings().database_url(Path("/var/lib/lakeless"), "pumps")
        'sqlite:////var/lib/lakeless/twin-pumps.sqlite'
    """

    url: str | None = Field(
        default=None,
        description="Database: sqlite:///path or postgresql://user:password@host:port/db "
        "(default: sqlite:///<data_dir>/twin.sqlite, twin-<pipeline>.sqlite for other "
        "pipelines).",
    )
    keep_readings: int = Field(
        default=DEFAULT_KEEP_READINGS, ge=1, description="Readings kept per entity."
    )
    keep_anomalies: int = Field(
        default=DEFAULT_KEEP_ANOMALIES, ge=1, description="Anomaly records kept per entity."
    )
    episode_gap_ms: int = Field(
        default=DEFAULT_EPISODE_GAP_MS,
        ge=0,
        description="Event-time gap between two anomalies that ends a failure episode (and "
        "after the last one, that closes it).",
    )
    serve_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Serve the HTTP/JSON API on this port while running (0: no API).",
    )
    serve_host: str = Field(default="127.0.0.1", description="Interface the API listens on.")
    serve_only: bool = Field(
        default=False, description="Only serve the API (needs --serve-port); consume nothing."
    )

    def database_url(self, data_dir: Path, pipeline: str) -> str:
        """`url`, or the default SQLite file of ``pipeline`` under ``data_dir``."""
        if self.url:
            return self.url
        name = "twin.sqlite" if pipeline == "car-fleet" else f"twin-{pipeline}.sqlite"
        return f"sqlite:///{data_dir / name}"
