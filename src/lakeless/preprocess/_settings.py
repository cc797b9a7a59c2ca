"""`PreprocessSettings`: ``LAKELESS_PREPROCESS__*`` and the options of ``lakeless preprocess``."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from lakeless._options import LoopOptions

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_FUTURE_MS", "DEFAULT_MIN_TS_MS", "PreprocessSettings"]

#: Default size limit of one raw record (bytes).
DEFAULT_MAX_BYTES: Final = 64 * 1024
#: Default allowed clock skew of devices: event time at most 5 minutes ahead.
DEFAULT_MAX_FUTURE_MS: Final = 5 * 60 * 1000
#: Default earliest event time, 2000-01-01T00:00:00Z. It catches timestamps sent in seconds
#: instead of milliseconds (which land in January 1970) and keeps recorded data from 2019.
DEFAULT_MIN_TS_MS: Final = 946_684_800_000


class PreprocessSettings(LoopOptions):
    """The preprocess stage's own settings (connections and the pipeline come from `Settings`).

    Example:
        >>> PreprocessSettings().batch_size
        5000
    """

    reprocess: bool = Field(
        default=False,
        description="Let a consumer group that never committed read the raw topic from the "
        "beginning although the clean topic holds records already (they are written again).",
    )
    where: str | None = Field(
        default=None,
        description="Filter expression, e.g. \"speed > 0 and model == 'e-sedan'\"; records "
        "for which it is false are counted as filtered and not produced.",
    )
    time_reference: Literal["record", "wall_clock"] = Field(
        default="record",
        description="Reference of the ts_in_future / ts_too_old checks: the record timestamp "
        "(capped at the wall clock; verdicts stable on replay) or the wall clock.",
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1,
        description="Longest accepted raw value in bytes (too_large).",
    )
    max_future_ms: int | None = Field(
        default=DEFAULT_MAX_FUTURE_MS,
        ge=0,
        description="Allowed event-time skew ahead of the reference time (ts_in_future).",
    )
    max_age_ms: int | None = Field(
        default=None,
        ge=0,
        description="Oldest accepted event time relative to the reference time (ts_too_old; "
        "default: any age).",
    )
    min_ts_ms: int | None = Field(
        default=DEFAULT_MIN_TS_MS,
        ge=0,
        description="Earliest accepted event time, ms since the epoch (default 2000-01-01: "
        "catches times sent in seconds).",
    )
