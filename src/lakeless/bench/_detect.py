"""``lakeless bench detect``: detection quality of the default model and its peers, side by side.

In memory, no Kafka: for each simulator (``fleet``: `lakeless.fleet.Fleet`, the one the default
model was designed against; ``fleet2``: `lakeless.testing.fleet2.Fleet2`, another physical model
with other couplings, noise, onsets and failure modes) and each seed, one fleet is simulated for
a training window (few failures: ``train_failure_rate``) and then, continuing the same cars, a
later evaluation window (more failures: ``eval_failure_rate``). Every model is fitted on the
healthy rows of the training window, its threshold calibrated on the latest ``holdout`` of them
at the same quantile (``threshold_quantile``), and evaluated on the later window with
`lakeless.model.evaluate`: episode recall per failure mode, false alarms per 10,000 healthy
events, median time to detect. A third evaluation, ``fleet->fleet2``, scores the second
simulator's later window with the models trained on the first one's window (how a model fares
on cars whose physics it never saw; its false alarms say more than its recall).

Models (names in `MODEL_NAMES`):

- ``autoencoder``: the default (`lakeless.model.Autoencoder`, the settings of ``lakeless
  train``: mean over features of the residual-scaled squared errors);
- ``autoencoder-max`` / ``autoencoder-top3``: the same network, the score the largest (the mean
  of the three largest) residual-scaled feature error instead of the mean;
- ``autoencoder-wide`` (``-max``): hidden widths 64, 32, 32, 64;
- ``autoencoder-context`` (``-max``): the vehicle model one-hot encoded as extra inputs;
- ``zscore``: `lakeless.model.ZScoreModel`;
- ``per-car`` (``-max``): the default network's signed residuals z-scored per car with the
  car's own training-window mean and spread (needs per-car state, not the ONNX contract);
- ``autoencoder-smoothed`` / ``autoencoder-max-smoothed``: the score of ``autoencoder`` /
  ``autoencoder-max`` averaged over time per car (an exponentially weighted mean with the time
  constant ``smoothing_seconds``), the threshold calibrated on the smoothed scores: a failure
  that shifts every reading a little adds up, healthy noise averages out (needs per-car state
  in the scorer, not the ONNX contract);
- ``iforest``, ``ecod``, ``copod``: pyod's detectors, when pyod is installed;
- ``hst``: River's online HalfSpaceTrees, when river is installed (learns while it scores).

Mean and spread (max - min) over the seeds are reported per model, evaluation and mode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._result import machine_info

if TYPE_CHECKING:
    from rich.table import Table

    from lakeless.testing.fleet2 import SimWindow

__all__ = ["MODEL_NAMES", "DetectBenchSettings", "DetectReport", "run_detect_bench"]

log = logging.getLogger(__name__)

#: Every model the suite knows, in report order.
MODEL_NAMES = (
    "autoencoder",
    "autoencoder-max",
    "autoencoder-top3",
    "autoencoder-wide",
    "autoencoder-wide-max",
    "autoencoder-context",
    "autoencoder-context-max",
    "autoencoder-smoothed",
    "autoencoder-max-smoothed",
    "zscore",
    "per-car",
    "per-car-max",
    "iforest",
    "ecod",
    "copod",
    "hst",
)
#: Evaluations: (name, simulator trained on, simulator evaluated on).
EVALUATIONS = (("fleet", "fleet", "fleet"), ("fleet2", "fleet2", "fleet2"))
CROSS = ("fleet->fleet2", "fleet", "fleet2")
#: Which models export to the ONNX scoring contract today, and how the others stand.
ONNX = {
    "autoencoder": "yes",
    "autoencoder-max": "yes (--aggregation max)",
    "autoencoder-top3": "yes (--aggregation top3)",
    "autoencoder-wide": "yes (--units)",
    "autoencoder-wide-max": "yes (--units, --aggregation max)",
    "zscore": "yes",
}
_GOALS = {"episode_recall_min": 0.9, "false_alarms_per_10k_max": 5.0}
_START = 1_700_000_000_000


class DetectBenchSettings(BaseModel):
    """What the detect suite simulates, trains and evaluates.

    Attributes:
        cars: cars per fleet.
        train_seconds: simulated seconds of the training window (one event per car per s).
        eval_seconds: simulated seconds of the later evaluation window.
        gap_seconds: simulated seconds between the two windows.
        burn_in_seconds: simulated seconds before the training window (no failures), so that
            the fleet is in its steady state (some cars parked and charging) in both windows;
            with 0 the training window starts with every car driving on a charged battery and
            sees no charging, which a later window does (then charging is what alarms).
        train_failure_rate: failures per car per hour in the training window.
        eval_failure_rate: failures per car per hour in the evaluation window.
        seeds: simulator seeds (the models' seed is fixed: only the data changes).
        epochs: autoencoder epochs.
        threshold_quantile: every model's threshold quantile of held-out healthy scores.
        smoothing_seconds: time constant of the ``-smoothed`` models' per-car average.
        models: which of `MODEL_NAMES` to run.
        cross: also score ``fleet2`` with the models trained on ``fleet``.
        quick: only recorded in the report.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cars: int = Field(default=60, ge=2)
    train_seconds: int = Field(default=1800, ge=60)
    eval_seconds: int = Field(default=3600, ge=60)
    gap_seconds: int = Field(default=600, ge=0)
    burn_in_seconds: int = Field(default=10_800, ge=0)
    train_failure_rate: float = Field(default=0.3, ge=0)
    eval_failure_rate: float = Field(default=1.0, gt=0)
    seeds: tuple[int, ...] = (1, 2, 3)
    epochs: int = Field(default=8, ge=1)
    threshold_quantile: float = Field(default=0.9995, gt=0, lt=1)
    smoothing_seconds: float = Field(default=30.0, gt=0)
    models: tuple[str, ...] = MODEL_NAMES
    cross: bool = True
    quick: bool = False

    @classmethod
    def for_mode(cls, quick: bool, **fields: Any) -> DetectBenchSettings:
        """``--quick``: 20 cars, 10-minute windows, one seed, 2 epochs; else the full run."""
        if quick:
            for key, value in {
                "cars": 20,
                "train_seconds": 600,
                "eval_seconds": 600,
                "gap_seconds": 0,
                "burn_in_seconds": 1200,
                "seeds": (1,),
                "epochs": 2,
                "eval_failure_rate": 3.0,
            }.items():
                fields.setdefault(key, value)
        unknown = [m for m in fields.get("models", ()) if m not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODEL_NAMES)}")
        return cls(quick=quick, **fields)


@dataclass
class DetectReport:
    """Per model and evaluation: per-seed evaluations and their mean and spread.

    Attributes:
        settings: the settings of the run.
        results: one dict per (model, evaluation) (see `to_dict`).
        skipped: models not run, with the reason (a peer not installed).
        machine: `lakeless.bench.machine_info`.
        wall_seconds: wall time of the suite.
    """

    settings: DetectBenchSettings
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=machine_info)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """``{"suite", "results", "skipped", "default", "goals", "settings", ...}``."""
        return {
            "suite": "detect",
            "results": self.results,
            "skipped": self.skipped,
            "default": "autoencoder",
            "goals": _GOALS,
            "settings": self.settings.model_dump(mode="json"),
            "machine": self.machine,
            "quick": self.settings.quick,
            "wall_seconds": round(self.wall_seconds, 1),
        }

    def to_json(self) -> str:
        """`to_dict` as one line of JSON."""
        import json

        return json.dumps(self.to_dict())

    def table(self) -> Table:
        """A rich table: episode recall per mode (mean ± spread), false alarms, median delay."""
        from rich.table import Table

        table = Table(title="lakeless bench detect" + (" (quick)" if self.settings.quick else ""))
        for column in ("model", "data", "FA/10k", "episode recall per mode", "median TTD s"):
            table.add_column(column)
        for r in self.results:
            modes = ", ".join(
                f"{mode} {_pm(m['episode_recall'])}" for mode, m in r["per_mode"].items()
            )
            delays = ", ".join(
                f"{_num(m['delay_s_median']['mean'], 0)}" for m in r["per_mode"].values()
            )
            table.add_row(r["model"], r["data"], _pm(r["false_alarms_per_10k"], 1), modes, delays)
        table.caption = f"seeds {list(self.settings.seeds)}, suite {self.wall_seconds:.0f} s"
        return table


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pm(stat: dict[str, Any], digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f}±{stat['spread']:.{digits}f}"


def _stat(values: Sequence[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return {"mean": None, "spread": None, "per_seed": list(values)}
    return {
        "mean": round(float(np.mean(known)), 4),
        "spread": round(float(np.max(known) - np.min(known)), 4),
        "per_seed": [None if v is None else round(float(v), 4) for v in values],
    }


# ---- data ---------------------------------------------------------------------------------------


def _windows(sim: str, seed: int, bench: DetectBenchSettings) -> tuple[SimWindow, SimWindow]:
    from lakeless.fleet import Fleet
    from lakeless.testing.fleet2 import Fleet2, collect

    fleet: Any
    if sim == "fleet":
        fleet = Fleet(bench.cars, seed=seed, start=_START, failure_rate=bench.train_failure_rate)
    else:
        fleet = Fleet2(bench.cars, seed=seed, start=_START, failure_rate=bench.train_failure_rate)
    fleet.failure_rate = 0.0
    for _ in range(bench.burn_in_seconds):
        fleet.step()
    fleet.failure_rate = bench.train_failure_rate
    train = collect(fleet, bench.train_seconds)
    fleet.failure_rate = 0.0
    for _ in range(bench.gap_seconds):
        fleet.step()
    fleet.failure_rate = bench.eval_failure_rate
    return train, collect(fleet, bench.eval_seconds)


def _one_hot(models: Sequence[str], names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(models), len(names)), np.float32)
    out[np.arange(len(models)), [index.get(m, 0) for m in models]] = 1.0
    return out


# ---- models -------------------------------------------------------------------------------------

#: A fitted detector: scores rows of a window (higher = more anomalous).
Scorer = Callable[["SimWindow"], np.ndarray]


def _aggregate(errors: np.ndarray, how: str) -> np.ndarray:
    """Row scores from per-feature errors ``[n, f]`` (each already residual-scaled)."""
    if how == "mean":
        out: np.ndarray = errors.mean(axis=1)
    elif how == "max":
        out = errors.max(axis=1)
    else:
        k = int(how.removeprefix("top"))
        out = np.sort(errors, axis=1)[:, -k:].mean(axis=1)
    return out


def _autoencoder_family(
    train: SimWindow, bench: DetectBenchSettings, *, units: Sequence[int] | None, context: bool
) -> tuple[Any, Callable[[SimWindow], np.ndarray]]:
    """Fit one autoencoder; return it and ``errors(window) -> [n, 18]`` residual-scaled errors."""
    from lakeless.model import Autoencoder
    from lakeless.train import TrainSettings

    names = sorted(set(train.models))

    def inputs(win: SimWindow) -> np.ndarray:
        if not context:
            return win.values
        return np.hstack([win.values, _one_hot(win.models, names)])

    x = inputs(train)
    params = TrainSettings(epochs=bench.epochs).model_params(x.shape[1])
    if units is not None:
        params["units"] = tuple(units)
    params["threshold_quantile"] = bench.threshold_quantile
    model = Autoencoder(**params).fit(x, train.labels, ts=train.ts)
    n = x.shape[1]

    def errors(win: SimWindow) -> np.ndarray:
        # feature_errors = squared error / (n x scale): undo the 1/n, keep the sensors' columns.
        _, feature_errors = model.score_with_errors(inputs(win))
        out: np.ndarray = feature_errors[:, :18].astype(np.float64) * n
        return out

    return model, errors


def _residuals(model: Any, x: np.ndarray) -> np.ndarray:
    mean = np.asarray(model.normalization["mean"])
    std = np.asarray(model.normalization["std"])
    z = ((x - mean) / std).astype(np.float32)
    recon = model._network.predict(z, batch_size=8192, verbose=0)
    residual: np.ndarray = (recon - z).astype(np.float64)
    return residual


def _per_car(
    model: Any, train: SimWindow, train_rows: np.ndarray, how: str
) -> Callable[[SimWindow], np.ndarray]:
    """Per-car z-scores of the default network's residuals, aggregated over features."""
    res = _residuals(model, train.values[train_rows])
    cars = np.asarray(train.car_ids, dtype=object)[train_rows]
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fleet_std = res.std(axis=0) + 1e-6
    for car in np.unique(cars).tolist():
        rows = res[cars == car]
        stats[car] = (rows.mean(axis=0), np.maximum(rows.std(axis=0), 0.2 * fleet_std))

    def score(win: SimWindow) -> np.ndarray:
        r = _residuals(model, win.values)
        mu = np.stack([stats.get(c, (np.zeros(18), fleet_std))[0] for c in win.car_ids])
        sd = np.stack([stats.get(c, (np.zeros(18), fleet_std))[1] for c in win.car_ids])
        return _aggregate(np.square((r - mu) / sd), how)

    return score


def _pyod(name: str, train: SimWindow, train_rows: np.ndarray, seed: int) -> Scorer:
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest

    x = train.values[train_rows]
    mean, std = x.mean(axis=0), np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    pick = np.random.default_rng(seed).permutation(len(x))[:20_000]
    detector: Any = {
        "iforest": lambda: IForest(n_estimators=100, random_state=seed),
        "ecod": ECOD,
        "copod": COPOD,
    }[name]()
    detector.fit((x[pick] - mean) / std)

    def score(win: SimWindow) -> np.ndarray:
        out: np.ndarray = detector.decision_function((win.values - mean) / std)
        return out

    return score


def _hst(train: SimWindow, train_rows: np.ndarray, seed: int) -> Scorer:
    from river.anomaly import HalfSpaceTrees

    x = train.values[train_rows]
    low, high = np.percentile(x, 0.1, axis=0), np.percentile(x, 99.9, axis=0)
    span = np.where(high > low, high - low, 1.0)
    model = HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=seed)
    names = [f"x{i}" for i in range(x.shape[1])]
    pick = np.random.default_rng(seed).permutation(len(x))[:5000]
    for row in np.clip((x[pick] - low) / span, 0, 1).tolist():
        model.learn_one(dict(zip(names, row, strict=True)))

    def score(win: SimWindow) -> np.ndarray:
        # Online: it keeps learning on what it scores (River's way), every 10th row.
        rows = np.clip((win.values - low) / span, 0, 1).tolist()
        out = np.empty(len(rows))
        for i, row in enumerate(rows):
            sample = dict(zip(names, row, strict=True))
            out[i] = model.score_one(sample)
            if i % 10 == 0:
                model.learn_one(sample)
        return out

    return score


# ---- the suite ----------------------------------------------------------------------------------


def _available(name: str) -> str | None:
    """Why a peer cannot run (its package is missing), or ``None``."""
    import importlib.util

    package = {"iforest": "pyod", "ecod": "pyod", "copod": "pyod", "hst": "river"}.get(name)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return f"{package} is not installed (pip install {package})"


def _fit_all(
    train: SimWindow, bench: DetectBenchSettings, seed: int, models: Sequence[str]
) -> dict[str, tuple[Scorer, float, float]]:
    """Fit every model on ``train``: name -> (scorer, threshold, fit seconds)."""
    from lakeless.model import ZScoreModel, calibrate_threshold, split_rows

    train_rows, calib_rows, _ = split_rows(
        len(train), train.labels, holdout=0.2, seed=42, calibration="latest", ts=train.ts
    )
    calib = _subset(train, calib_rows)
    out: dict[str, tuple[Scorer, float, float]] = {}
    wanted = set(models)

    def add(name: str, scorer: Scorer, started: float) -> None:
        threshold = calibrate_threshold(scorer(calib), bench.threshold_quantile)
        out[name] = (scorer, threshold, round(time.perf_counter() - started, 2))

    families = {
        "autoencoder": (None, False, ("", "-max", "-top3")),
        "autoencoder-wide": ((64, 32, 32, 64), False, ("", "-max")),
        "autoencoder-context": (None, True, ("", "-max")),
    }
    default_model = None
    for base, (units, context, variants) in families.items():
        names = [base + v for v in variants]
        smoothed_names = {f"{name}-smoothed" for name in names}
        needs_default = base == "autoencoder" and wanted & {"per-car", "per-car-max"}
        if not wanted & {*names, *smoothed_names} and not needs_default:
            continue
        started = time.perf_counter()
        model, errors = _autoencoder_family(train, bench, units=units, context=context)
        if base == "autoencoder":
            default_model = model
        cached = _last_window_cache(errors)
        for name, how in zip(names, ("mean", "max", "top3"), strict=False):
            if name in wanted:
                add(name, _aggregated(cached, how), started)
            if f"{name}-smoothed" in wanted:
                smoothed = _smoothed(_aggregated(cached, how), bench.smoothing_seconds)
                add(f"{name}-smoothed", smoothed, started)
        if base == "autoencoder" and "autoencoder" in wanted:
            # The same split and quantile: the threshold `lakeless train` would register.
            log.debug("autoencoder threshold %s (own %s)", out["autoencoder"][1], model.threshold)
    for how, name in (("mean", "per-car"), ("max", "per-car-max")):
        if name in wanted and default_model is not None:
            started = time.perf_counter()
            add(name, _per_car(default_model, train, train_rows, how), started)
    if "zscore" in wanted:
        started = time.perf_counter()
        z = ZScoreModel(threshold_quantile=bench.threshold_quantile, seed=42, holdout=0.2)
        fitted = z.fit(train.values, train.labels)
        add("zscore", lambda w: np.asarray(fitted.score(w.values)), started)
    for name in ("iforest", "ecod", "copod"):
        if name in wanted:
            started = time.perf_counter()
            add(name, _pyod(name, train, train_rows, seed), started)
    if "hst" in wanted:
        started = time.perf_counter()
        add("hst", _hst(train, train_rows, seed), started)
    return out


def _aggregated(errors: Callable[[SimWindow], np.ndarray], how: str) -> Scorer:
    return lambda win: _aggregate(errors(win), how)


def _smoothed(scorer: Scorer, tau_s: float) -> Scorer:
    """``scorer``'s scores averaged per car over time (exponential weights, time constant tau).

    Example:
        >>> from lakeless.testing.fleet2 import SimWindow
        >>> win = SimWindow(np.zeros((4, 18)), [None] * 4, ["a", "b", "a", "a"],
        ...                 np.array([0, 0, 1000, 2000]), ["m"] * 4)
        >>> scores = lambda w: np.array([1.0, 5.0, 0.0, 0.0])
        >>> _smoothed(scores, 1.0)(win).round(3).tolist()  # b alone; a decays by e^-1 a second
        [1.0, 5.0, 0.368, 0.135]
    """
    tau_ms = tau_s * 1000.0

    def score(win: SimWindow) -> np.ndarray:
        raw = scorer(win).tolist()
        out = np.empty(len(raw), np.float64)
        last: dict[str, tuple[float, float]] = {}  # car -> (time, average)
        for i, (car, t, value) in enumerate(zip(win.car_ids, win.ts.tolist(), raw, strict=True)):
            seen = last.get(car)
            if seen is not None:
                keep = math.exp(-max(t - seen[0], 0.0) / tau_ms)
                value = keep * seen[1] + (1.0 - keep) * value
            last[car] = (t, value)
            out[i] = value
        return out

    return score


def _last_window_cache(
    errors: Callable[[SimWindow], np.ndarray],
) -> Callable[[SimWindow], np.ndarray]:
    """``errors`` remembering its last window: one network pass for every aggregation."""
    last: list[Any] = [None, None]

    def cached(win: SimWindow) -> np.ndarray:
        if last[0] is not win:
            last[0], last[1] = win, errors(win)
        result: np.ndarray = last[1]
        return result

    return cached


def _subset(win: SimWindow, rows: np.ndarray) -> SimWindow:
    from lakeless.testing.fleet2 import SimWindow

    idx = rows.tolist()
    return SimWindow(
        values=win.values[rows],
        labels=[win.labels[i] for i in idx],
        car_ids=[win.car_ids[i] for i in idx],
        ts=win.ts[rows],
        models=[win.models[i] for i in idx],
    )


def _evaluate(scorer: Scorer, threshold: float, win: SimWindow) -> dict[str, Any]:
    from lakeless.model import evaluate

    ev = evaluate(scorer(win), threshold, win.labels, win.car_ids, win.ts)
    return {
        "false_alarms_per_10k": ev.false_alarms_per_10k,
        "per_mode": {
            mode: {
                "episode_recall": m.episode_recall,
                "episodes": (m.episodes or 0) - (m.ongoing or 0),
                "delay_s_median": m.delay_s_median,
                "event_recall": m.recall,
            }
            for mode, m in ev.per_mode.items()
        },
    }


def run_detect_bench(bench: DetectBenchSettings) -> DetectReport:
    """Run the suite (see the module docstring); minutes for the full run, seconds quick."""
    started = time.perf_counter()
    report = DetectReport(settings=bench)
    models = []
    for name in bench.models:
        reason = _available(name)
        if reason is None:
            models.append(name)
        else:
            report.skipped[name] = reason
    # (model, data) -> one evaluation per seed
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    fit_seconds: dict[str, list[float]] = {}
    evaluations = [*EVALUATIONS, CROSS] if bench.cross else list(EVALUATIONS)
    for seed in bench.seeds:
        windows = {sim: _windows(sim, seed, bench) for sim in ("fleet", "fleet2")}
        fitted = {sim: _fit_all(windows[sim][0], bench, seed, models) for sim in windows}
        for data, trained_on, evaluated_on in evaluations:
            later = windows[evaluated_on][1]
            for name, (scorer, threshold, seconds) in fitted[trained_on].items():
                if data == CROSS[0] and name.startswith("per-car"):
                    continue  # another fleet's cars: no per-car statistics
                log.info("detect: seed %d, %s on %s", seed, name, data)
                runs.setdefault((name, data), []).append(_evaluate(scorer, threshold, later))
                if data == trained_on:
                    fit_seconds.setdefault(name, []).append(seconds)
    for name in models:
        for data, *_ in evaluations:
            per_seed = runs.get((name, data))
            if not per_seed:
                continue
            modes = sorted({mode for run in per_seed for mode in run["per_mode"]})
            report.results.append(
                {
                    "model": name,
                    "data": data,
                    "onnx": ONNX.get(name, "no"),
                    "fit_seconds": _stat(fit_seconds.get(name, [])),
                    "false_alarms_per_10k": _stat([r["false_alarms_per_10k"] for r in per_seed]),
                    "per_mode": {
                        mode: {
                            key: _stat([r["per_mode"].get(mode, {}).get(key) for r in per_seed])
                            for key in ("episode_recall", "delay_s_median", "event_recall")
                        }
                        | {
                            "episodes": sum(
                                r["per_mode"].get(mode, {}).get("episodes", 0) for r in per_seed
                            )
                        }
                        for mode in modes
                    },
                }
            )
    report.wall_seconds = time.perf_counter() - started
    return report
