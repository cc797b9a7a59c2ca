"""The train suite's results: path names, the ratios with their goals, the report.

`lakeless.bench._train` describes the paths; this module names them (`TRAIN_PATHS`), divides
them by each other (`RATIO_SPECS`, `compute_ratios`) and renders the report
(`TrainBenchReport`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from lakeless.bench._result import BenchReport, BenchResult

__all__ = [
    "MEMORY_TF",
    "PARQUET_NUMPY",
    "RATIO_SPECS",
    "RAW_CONSUME",
    "READER_NUMPY",
    "READER_TF",
    "TFIO",
    "TFIO_PER_MESSAGE",
    "TRAIN_KAFKA",
    "TRAIN_PARQUET",
    "TRAIN_PATHS",
    "Ratio",
    "RatioSpec",
    "TrainBenchReport",
    "compute_ratios",
    "median_run",
]

RAW_CONSUME: Final = "raw-consume"
READER_NUMPY: Final = "reader->numpy"
READER_TF: Final = "reader->tf.data"
MEMORY_TF: Final = "memory->tf.data"
PARQUET_NUMPY: Final = "parquet->numpy"
TFIO: Final = "tensorflow-io"
TFIO_PER_MESSAGE: Final = "tensorflow-io-per-message"
TRAIN_KAFKA: Final = "train-from-kafka"
TRAIN_PARQUET: Final = "train-from-parquet"
#: Every result the train suite reports, in order.
TRAIN_PATHS: Final = (
    RAW_CONSUME,
    READER_NUMPY,
    READER_TF,
    MEMORY_TF,
    PARQUET_NUMPY,
    TFIO,
    TFIO_PER_MESSAGE,
    TRAIN_KAFKA,
    TRAIN_PARQUET,
)


@dataclass(frozen=True)
class RatioSpec:
    """A ratio the report computes: ``numerator / denominator`` of one metric, with a goal.

    Attributes:
        numerator: result name on top.
        denominator: result name below.
        metric: ``events_per_s`` (higher is better) or ``seconds`` (lower is better).
        goal: ``(">=", 10.0)`` or ``("<=", 1.2)``; ``None``: informational.
    """

    numerator: str
    denominator: str
    metric: Literal["events_per_s", "seconds"]
    goal: tuple[Literal[">=", "<="], float] | None = None

    @property
    def name(self) -> str:
        """``"numerator / denominator"``."""
        return f"{self.numerator} / {self.denominator}"


#: The ratios of the train suite.
RATIO_SPECS: Final = (
    RatioSpec(READER_NUMPY, RAW_CONSUME, "events_per_s", (">=", 0.8)),
    RatioSpec(READER_TF, READER_NUMPY, "events_per_s", (">=", 0.9)),
    RatioSpec(READER_TF, MEMORY_TF, "events_per_s"),
    # The goal is against the talk's way (decoded per message); the batched peer is the most
    # favourable tensorflow-io allows, reported beside it.
    RatioSpec(READER_TF, TFIO_PER_MESSAGE, "events_per_s", (">=", 10.0)),
    RatioSpec(READER_NUMPY, TFIO_PER_MESSAGE, "events_per_s", (">=", 10.0)),
    RatioSpec(READER_TF, TFIO, "events_per_s"),
    RatioSpec(READER_NUMPY, TFIO, "events_per_s"),
    RatioSpec(TRAIN_KAFKA, TRAIN_PARQUET, "seconds", ("<=", 1.2)),
    RatioSpec(READER_NUMPY, PARQUET_NUMPY, "events_per_s"),
)


@dataclass(frozen=True)
class Ratio:
    """A computed ratio; ``value`` is ``None`` (with a ``reason``) when a side was not measured.

    Attributes:
        spec: what was divided by what.
        value: the ratio, rounded to 3 decimals.
        met: whether the goal is met (``None`` without a goal or a value).
        reason: why there is no value.
    """

    spec: RatioSpec
    value: float | None
    met: bool | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "numerator", "denominator", "metric", "value", "goal", "met"}`` (+reason)."""
        goal = self.spec.goal
        out: dict[str, Any] = {
            "name": self.spec.name,
            "numerator": self.spec.numerator,
            "denominator": self.spec.denominator,
            "metric": self.spec.metric,
            "value": self.value,
            "goal": None if goal is None else f"{goal[0]} {goal[1]:g}",
            "met": self.met,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def _measured(result: BenchResult | None) -> str | None:
    """Why ``result`` cannot be divided (missing, skipped, failed, incomplete), or ``None``."""
    if result is None:
        return "not measured"
    if result.extra.get("skipped") or result.extra.get("failed"):
        return str(result.extra.get("reason", "skipped"))
    if not result.extra.get("complete", True):
        return "incomplete"
    if result.seconds <= 0 or result.events <= 0:
        return "nothing measured"
    return None


def compute_ratios(
    results: Sequence[BenchResult], specs: Sequence[RatioSpec] = RATIO_SPECS
) -> list[Ratio]:
    """The ratios of ``specs`` over ``results`` (a missing or skipped side gives no value).

    Example:
        >>> rs = [BenchResult(TRAIN_KAFKA, 300, 11.0), BenchResult(TRAIN_PARQUET, 300, 10.0)]
        >>> [(r.spec.name, r.value, r.met) for r in compute_ratios(rs) if r.value is not None]
        [('train-from-kafka / train-from-parquet', 1.1, True)]
    """
    by_name = {result.name: result for result in results}
    out = []
    for spec in specs:
        top, bottom = by_name.get(spec.numerator), by_name.get(spec.denominator)
        reason = _measured(top) or _measured(bottom)
        if reason is not None or top is None or bottom is None:
            side = spec.numerator if _measured(top) else spec.denominator
            out.append(Ratio(spec, None, reason=f"{side}: {reason}"))
            continue
        value = round(getattr(top, spec.metric) / getattr(bottom, spec.metric), 3)
        met = None
        if spec.goal is not None:
            op, bound = spec.goal
            met = value >= bound if op == ">=" else value <= bound
        out.append(Ratio(spec, value, met))
    return out


@dataclass
class TrainBenchReport(BenchReport):
    """A `BenchReport` with the train suite's ratios.

    Each result's dict gains ``ratio``: ``{denominator: value}`` for every ratio it is the
    numerator of; the report's dict gains ``ratios``: every `Ratio` with its goal.

    Example:
        >>> from lakeless.bench._result import skipped
        >>> report = TrainBenchReport(
        ...     "train",
        ...     [BenchResult(READER_TF, 1000, 1.0), skipped(TFIO, "--no-tfio")],
        ...     machine={},
        ... )
        >>> data = report.to_dict()
        >>> data["results"][0]["ratio"]["tensorflow-io"]
        >>> [r["reason"] for r in data["ratios"] if r["denominator"] == "tensorflow-io"]
        ['tensorflow-io: --no-tfio', 'reader->numpy: not measured']
    """

    specs: Sequence[RatioSpec] = RATIO_SPECS

    @property
    def ratios(self) -> list[Ratio]:
        """The ratios of `specs` over the results."""
        return compute_ratios(self.results, self.specs)

    def to_dict(self) -> dict[str, Any]:
        """`BenchReport.to_dict` plus ``ratio`` per result and the report's ``ratios``."""
        data = super().to_dict()
        ratios = self.ratios
        for result in data["results"]:
            mine = {
                r.spec.denominator: r.value for r in ratios if r.spec.numerator == result["name"]
            }
            if mine:
                result["ratio"] = mine
        data["ratios"] = [ratio.to_dict() for ratio in ratios]
        return data

    def table(self) -> Any:
        """`BenchReport.table`, with the ratios and their goals in the caption."""
        table = super().table()
        lines = [str(table.caption or "")]
        for ratio in self.ratios:
            goal = ratio.spec.goal
            target = "" if goal is None else f" (goal {goal[0]} {goal[1]:g}"
            if goal is not None:
                target += ")" if ratio.met is None else (": met)" if ratio.met else ": not met)")
            shown = f"{ratio.value:.2f}" if ratio.value is not None else f"n/a, {ratio.reason}"
            lines.append(f"{ratio.spec.name} ({ratio.spec.metric}) = {shown}{target}")
        table.caption = "\n".join(lines)
        return table


def median_run(runs: Sequence[BenchResult]) -> BenchResult:
    """The run with the median rate, with every run's rate and the spread in ``extra``."""
    from lakeless.bench._latency import spread

    ordered = sorted(runs, key=lambda r: r.events_per_s)
    chosen = ordered[len(ordered) // 2]
    rates = [round(r.events_per_s, 1) for r in runs]
    extra = {**chosen.extra, "repeats": len(runs), "runs_per_s": rates, "spread": spread(rates)}
    return BenchResult(chosen.name, chosen.events, chosen.seconds, extra)
