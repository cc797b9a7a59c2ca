"""Benchmarks against peers, measured side by side in one run (``lakeless bench``).

Each suite measures lakeless' own paths and a *ceiling* (the best the same machine does, e.g.
Kafka's own producer-perf tool) in one run and reports every path's ``events_per_s`` with its
``ratio_to_ceiling``. The machine this project runs on is shared and noisy, so ratios are the
numbers to compare between runs; tests never assert on speed.

`BenchResult` and `BenchReport` (rate, ratio, JSON, rich table) are shared by every suite. The
suites themselves are imported on first use, so ``import lakeless.bench`` stays cheap:

- `run_ingest_bench` (``lakeless bench ingest``): simulator -> MQTT, bridge, simulator ->
  Kafka, preprocess, against ``kafka-producer-perf``; see ``lakeless.bench._ingest``.
- ``lakeless bench tier``: a window read wholly from the S3 tier against the same records on
  local disk; see ``lakeless.bench._tier``.

Example:
    >>> BenchResult("bridge", events=30_000, seconds=2.0).events_per_s
    15000.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeless.bench._result import BenchReport, BenchResult, machine_info

if TYPE_CHECKING:
    from lakeless.bench._ingest import (
        CEILING,
        INGEST_PATHS,
        BenchError,
        IngestBenchSettings,
        run_ingest_bench,
    )

__all__ = [
    "CEILING",
    "INGEST_PATHS",
    "BenchError",
    "BenchReport",
    "BenchResult",
    "IngestBenchSettings",
    "machine_info",
    "run_ingest_bench",
]

_LAZY = {"CEILING", "INGEST_PATHS", "BenchError", "IngestBenchSettings", "run_ingest_bench"}


def __getattr__(name: str) -> Any:
    # The ingest suite pulls in the bridge, the simulator and Kafka clients: load on first use.
    if name in _LAZY:
        from lakeless.bench import _ingest

        return getattr(_ingest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
