"""Benchmark results and reports, shared by every ``lakeless bench`` suite.

A suite measures a few named paths and one *ceiling* (what the same machine can do at best, e.g.
Kafka's own producer-perf tool) in the same run. Each result reports ``events_per_s`` and its
``ratio_to_ceiling``: on a shared, noisy machine absolute rates move from run to run, ratios to a
peer measured minutes apart on the same machine much less.

Example:
    >>> report = BenchReport(
    ...     "ingest",
    ...     [BenchResult("ceiling", 100_000, 1.0), BenchResult("mine", 25_000, 0.5)],
    ...     ceiling="ceiling",
    ...     machine={"cpus": 2},
    ... )
    >>> [(r["name"], r["events_per_s"], r["ratio_to_ceiling"]) for r in report.to_dict()["results"]]
    [('ceiling', 100000.0, 1.0), ('mine', 50000.0, 0.5)]
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["BenchReport", "BenchResult", "machine_info", "skipped"]


@dataclass(frozen=True)
class BenchResult:
    """One measured path: how many events went through in how many wall seconds.

    Attributes:
        name: what was measured (``simulate->mqtt``, ``bridge``, ...).
        events: events that completed (acknowledged, processed) during the measurement.
        seconds: wall seconds the measurement took.
        extra: anything else worth keeping (settings, counters, notes); JSON-ready values.
    """

    name: str
    events: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """``events / seconds`` (0 when nothing was timed)."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, ceiling_per_s: float | None = None) -> dict[str, Any]:
        """JSON-ready dict; ``ratio_to_ceiling`` is ``None`` without a (positive) ceiling."""
        ratio = None
        if ceiling_per_s:
            ratio = round(self.events_per_s / ceiling_per_s, 3)
        return {
            "name": self.name,
            "events_per_s": round(self.events_per_s, 1),
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "ratio_to_ceiling": ratio,
            "extra": self.extra,
        }


def skipped(name: str, reason: str, **extra: Any) -> BenchResult:
    """A result that was not measured, and why (its rate is 0; ratios leave it out).

    Example:
        >>> skipped("tensorflow-io", "--no-tfio").extra
        {'skipped': True, 'reason': '--no-tfio'}
    """
    return BenchResult(name, 0, 0.0, {"skipped": True, "reason": reason, **extra})


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPUs, memory, load, OS and Python."""
    info: dict[str, Any] = {"cpu_count": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(ValueError, OSError, AttributeError):
        info["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if hasattr(os, "getloadavg"):
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    info["platform"] = platform.platform()
    info["machine"] = platform.machine()
    info["python"] = sys.version.split()[0]
    return info


@dataclass
class BenchReport:
    """The results of one suite run, with the ceiling they are compared against.

    Attributes:
        suite: the suite's name (``ingest``, ...).
        results: the measurements, in the order they should be shown.
        ceiling: name of the result the others are divided by; ``None``: no ratios.
        quick: whether the suite ran in its quick mode (small counts).
        machine: `machine_info` plus whatever the suite adds (versions, ...).
        wall_seconds: wall time of the whole suite, start-up and shut-down included.
    """

    suite: str
    results: list[BenchResult]
    ceiling: str | None = None
    quick: bool = False
    machine: dict[str, Any] = field(default_factory=machine_info)
    wall_seconds: float = 0.0

    @classmethod
    def finished(
        cls,
        suite: str,
        results: list[BenchResult],
        *,
        started: float,
        machine: dict[str, Any],
        ceiling: str | None = None,
        quick: bool = False,
    ) -> Self:
        """The report of a suite run that began at ``started`` (`time.monotonic`) and just ended.

        ``machine`` (`machine_info` from before the run, plus what the suite adds) gains
        ``load_avg_1m_after``, the load as the run ends; ``wall_seconds`` runs from ``started``.

        Example:
            >>> report = BenchReport.finished("x", [], started=time.monotonic(), machine={})
            >>> list(report.machine), report.wall_seconds < 60
            (['load_avg_1m_after'], True)
        """
        machine = {**machine, "load_avg_1m_after": machine_info().get("load_avg_1m")}
        return cls(
            suite,
            results,
            ceiling=ceiling,
            quick=quick,
            machine=machine,
            wall_seconds=time.monotonic() - started,
        )

    @property
    def ceiling_per_s(self) -> float | None:
        """The ceiling's rate, or ``None`` when there is none (or it measured nothing)."""
        for result in self.results:
            if result.name == self.ceiling:
                return result.events_per_s or None
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{"suite", "results": [...], "ceiling", "machine", "quick", "wall_seconds"}``."""
        ceiling = self.ceiling_per_s
        return {
            "suite": self.suite,
            "results": [result.to_dict(ceiling) for result in self.results],
            "ceiling": self.ceiling,
            "machine": self.machine,
            "quick": self.quick,
            "wall_seconds": round(self.wall_seconds, 1),
        }

    def to_json(self) -> str:
        """`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict())

    def table(self) -> Table:
        """A rich table for humans: rate, ratio to the ceiling, events, seconds, notes."""
        from rich.table import Table

        ceiling = self.ceiling_per_s
        table = Table(title=f"lakeless bench {self.suite}" + (" (quick)" if self.quick else ""))
        table.add_column("path")
        table.add_column("events/s", justify="right")
        table.add_column("x ceiling", justify="right")
        table.add_column("events", justify="right")
        table.add_column("seconds", justify="right")
        table.add_column("notes")
        for result in self.results:
            ratio = "" if not ceiling else f"{result.events_per_s / ceiling:.2f}"
            note = str(result.extra.get("note", ""))
            table.add_row(
                result.name + (" (ceiling)" if result.name == self.ceiling else ""),
                f"{result.events_per_s:,.0f}",
                ratio,
                f"{result.events:,}",
                f"{result.seconds:.2f}",
                note,
            )
        cpus = self.machine.get("cpus_usable", self.machine.get("cpu_count"))
        table.caption = f"{cpus} CPUs, whole suite {self.wall_seconds:.1f} s"
        return table
