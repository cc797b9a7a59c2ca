"""`FleetSettings`: ``LAKELESS_SIMULATE__*`` and the options of ``lakeless simulate``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from lakeless._options import ServiceOptions

__all__ = ["Destination", "FleetSettings", "parse_time"]

Destination = Literal["mqtt", "kafka", "stdout", "null"]
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time(value: Any, now_ms: int | None = None) -> int | None:
    """Ms since the epoch from an int, ``now``, a relative ``-30m`` or an ISO 8601 time.

    Example:
        >>> parse_time("-30m", now_ms=10_000_000), parse_time("1970-01-01T00:00:01Z")
        (8200000, 1000)

    Raises:
        ValueError: none of those.
    """
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if text == "now":
        return now
    if text.lstrip("-").isdigit():
        return int(text)
    if (match := _RELATIVE.match(text)) is not None:
        return now - int(float(match.group(1)) * _UNIT_MS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"a time is ms since the epoch, ISO 8601, 'now' or relative like -30m; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class FleetSettings(ServiceOptions):
    """What to simulate and how fast (one ``lakeless simulate`` invocation).

    The device simulator follows the pipeline: the car fleet, or the pumps example.
    ``count`` counts events sent; ``timeout`` is wall seconds; ``until_idle`` does not apply (a
    simulator always has something to send) and is refused.

    Example:
        >>> FleetSettings(fast=True, duration=60).speedup_factor
        0.0
    """

    cars: int = Field(default=100, ge=1, le=1_000_000, description="Devices (cars, pumps).")
    interval: float = Field(
        default=1.0,
        gt=0,
        le=86_400,
        description="Seconds of simulated time between two events of one device.",
    )
    duration: float | None = Field(
        default=None, gt=0, description="Simulated seconds to run (default: until stopped)."
    )
    failure_rate: float = Field(
        default=0.5, ge=0, le=3600, description="Failures per device per simulated hour."
    )
    repair_after: float = Field(
        default=900.0, gt=0, description="Simulated seconds from a failure's onset to repair."
    )
    ramp: float = Field(
        default=45.0, ge=0, description="Simulated seconds for a failure to reach full severity."
    )
    speedup: float = Field(
        default=1.0, ge=0, description="Simulated seconds per wall second; 0: as fast as possible."
    )
    fast: bool = Field(default=False, description="As fast as possible (the same as --speedup 0).")
    start: int | None = Field(
        default=None,
        ge=0,
        description="Event time of the first step: ms, ISO 8601, 'now' or relative like -30m "
        "(default: now, or, with --fast and --duration, the duration before now, so the run "
        "ends now).",
    )
    send_from: int | None = Field(
        default=None,
        ge=0,
        description="Simulate but do not send events before this time (same forms as --start): "
        "continues an earlier run with the same --seed and --start.",
    )
    seed: int | None = Field(
        default=None, ge=0, description="Random seed (default: drawn, and reported)."
    )
    to: Destination = Field(default="mqtt", description="Where the events go.")
    models: tuple[str, ...] | None = Field(
        default=None, description="Comma-separated vehicle models (default: the mix)."
    )
    id_prefix: str = Field(
        default="car-",
        pattern=r"^[A-Za-z0-9_.:-]*$",
        max_length=32,
        description="Device ids are <prefix><index>: give each of several simulators its own.",
    )
    chunk: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Events handed to the sink at once; paced runs send a chunk when its last "
        "event is due, so it is also the timing granularity.",
    )

    @field_validator("until_idle")
    @classmethod
    def _never_idle(cls, value: float | None) -> float | None:
        if value is not None:
            raise ValueError(
                "a simulator never idles: stop it with --count, --duration or --timeout"
            )
        return value

    @field_validator("start", "send_from", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return parse_time(value)

    @field_validator("models", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip()) or None
        return value

    @property
    def speedup_factor(self) -> float:
        """`speedup`, or 0 with `fast`."""
        return 0.0 if self.fast else self.speedup

    def first_time(self) -> int | None:
        """When the first step happens: `start`; by default the end of a fast run is now."""
        if self.start is not None:
            return self.start
        if self.speedup_factor == 0 and self.duration is not None:
            return int(time.time() * 1000 - self.duration * 1000)
        return None

    def fleet(self, kind: Any = None) -> Any:
        """A fresh simulator of these settings (`lakeless.fleet.Fleet` unless ``kind``)."""
        if kind is None:
            from lakeless.fleet._fleet import Fleet

            kind = Fleet
        return kind(
            self.cars,
            seed=self.seed,
            interval=self.interval,
            start=self.first_time(),
            failure_rate=self.failure_rate,
            repair_after=self.repair_after,
            ramp=self.ramp,
            models=self.models,
            **({"id_prefix": self.id_prefix} if self.id_prefix != "car-" else {}),
        )
