"""`ImportSettings`: ``LAKELESS_IMPORTER__*`` and the options of ``lakeless import``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from lakeless._options import RunOptions

__all__ = ["ImportSettings"]


class ImportSettings(RunOptions):
    """How a file is imported (the pipeline and connections come from `Settings`).

    Example:
        >>> ImportSettings(scale="battery_percentage=100").scale
        {'battery_percentage': 100.0}
    """

    time_unit: Literal["auto", "s", "ms"] = Field(
        default="auto",
        description="Unit of CSV times: auto (below 10^11 seconds, else milliseconds), s or ms.",
    )
    scale: dict[str, float] = Field(
        default_factory=dict,
        description="FIELD=FACTOR[,FIELD=FACTOR...]: multiply numeric CSV fields, e.g. "
        "battery_percentage=100 for a battery recorded as a 0-1 fraction.",
    )

    @field_validator("scale", mode="before")
    @classmethod
    def _parse_scale(cls, value: Any) -> Any:
        if isinstance(value, str):
            out: dict[str, float] = {}
            for item in filter(None, (part.strip() for part in value.split(","))):
                name, sep, factor = item.partition("=")
                try:
                    out[name.strip()] = float(factor)
                except ValueError:
                    sep = ""
                if not sep or not name.strip():
                    raise ValueError(f"--scale wants FIELD=FACTOR, got {item!r}") from None
            return out
        return value
