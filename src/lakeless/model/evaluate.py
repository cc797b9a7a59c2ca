"""Evaluation of anomaly scores against failure labels: pure numpy, JSON-able results.

Definitions (an *alarm* is a row whose score is strictly above the threshold; *healthy* rows have
the label ``None``):

- **false alarms per 10,000 healthy events**: alarms on healthy rows / healthy rows x 10,000.
- **overall** precision = alarms on failure rows / all alarms; recall = alarms on failure rows /
  failure rows; F1 their harmonic mean.
- **per mode** recall = alarms on rows of that mode / rows of that mode. Per-mode precision is
  *one mode against healthy*: alarms on the mode's rows / (those + every false alarm on healthy
  rows), i.e. the precision a detector would have on data holding only this mode and the same
  healthy rows. (A false alarm belongs to no mode, so splitting it between modes would be
  arbitrary; counting all of them against every mode is the conservative choice.)
- **episodes** (needs ``car_ids`` and ``ts``): a maximal run of one car's events, in time order,
  that carry the same failure label. Its onset is the time of its first event; its detection
  delay is the time of its first alarm minus the onset; an episode with no alarm is undetected.
  An episode that starts at the car's first event in the data may have begun before the window
  (its onset is unknown): it counts for episode recall but not for the delay statistics
  (``censored``). An episode still running at the car's last event without an alarm yet is
  undecided (``ongoing``: it may be a failure seconds old) and is left out of episode recall.
  Episode recall = detected episodes / (episodes - ongoing).

Event-level recall is bounded by the labelling: the simulator labels a failure from its onset
at severity 0, so the first seconds of every episode look healthy by construction. Episode
recall and the detection delay are the operational numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lakeless._mixins import AsDict


@dataclass(frozen=True)
class ModeMetrics:
    """Detection metrics of one failure mode.

    Attributes:
        events: rows labelled with this mode.
        detected: of those, rows with an alarm.
        recall: ``detected / events``.
        precision: one-mode-against-healthy precision (see the module docstring).
        f1: harmonic mean of ``precision`` and ``recall``.
        episodes: failure episodes of this mode (``None`` without car ids and times).
        episodes_detected: episodes with at least one alarm.
        episode_recall: ``episodes_detected / episodes``.
        censored: episodes that may have begun before the data (no delay measured).
        ongoing: undetected episodes still running at the end of the data (not counted).
        delay_s_median: median seconds from onset to first alarm over detected episodes.
        delay_s_p90: 90th percentile of that delay.
        delay_s_max: largest delay.
    """

    events: int
    detected: int
    recall: float | None
    precision: float | None
    f1: float | None
    episodes: int | None = None
    episodes_detected: int | None = None
    episode_recall: float | None = None
    censored: int | None = None
    ongoing: int | None = None
    delay_s_median: float | None = None
    delay_s_p90: float | None = None
    delay_s_max: float | None = None


@dataclass(frozen=True)
class Evaluation(AsDict):
    """Detection quality of scores at one threshold.

    Attributes:
        threshold: the threshold evaluated.
        events: rows evaluated.
        healthy: healthy rows.
        failures: labelled failure rows.
        alarms: rows with an alarm.
        false_alarms: alarms on healthy rows.
        false_alarms_per_10k: false alarms per 10,000 healthy rows.
        precision: overall precision (``None`` without alarms).
        recall: overall event recall (``None`` without failure rows).
        f1: overall F1.
        per_mode: `ModeMetrics` per failure mode, in sorted mode order.
    """

    threshold: float
    events: int
    healthy: int
    failures: int
    alarms: int
    false_alarms: int
    false_alarms_per_10k: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    per_mode: dict[str, ModeMetrics] = field(default_factory=dict)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def evaluate(
    scores: np.ndarray,
    threshold: float,
    labels: Sequence[str | None],
    car_ids: Sequence[str] | None = None,
    ts: np.ndarray | Sequence[int] | None = None,
) -> Evaluation:
    """Evaluate anomaly scores against failure labels.

    Args:
        scores: score per row.
        threshold: alarm when ``score > threshold``.
        labels: failure label per row (``None`` = healthy).
        car_ids: car id per row; with ``ts``, enables episode metrics and detection delays.
        ts: event time per row, ms since the epoch.

    Returns:
        The `Evaluation` (see the module docstring for the definitions).

    Example:
        >>> scores = np.array([0.1, 0.9, 0.2, 0.8, 0.95])
        >>> labels = [None, None, "shock", "shock", "battery"]
        >>> ev = evaluate(scores, 0.5, labels)
        >>> ev.false_alarms, ev.false_alarms_per_10k, ev.precision, ev.recall
        (1, 5000.0, 0.6666666666666666, 0.6666666666666666)
        >>> ev.per_mode["shock"].recall, ev.per_mode["shock"].precision
        (0.5, 0.5)
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(s)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} scores")
    alarm = s > threshold
    label_arr = np.array(["" if label is None else label for label in labels], dtype=object)
    healthy = label_arr == ""
    n_healthy = int(healthy.sum())
    false_alarms = int((alarm & healthy).sum())
    true_alarms = int((alarm & ~healthy).sum())
    n_fail = n - n_healthy

    episodes: dict[str, _Episodes] = {}
    if car_ids is not None and ts is not None:
        episodes = _episodes(alarm, label_arr, car_ids, np.asarray(ts, dtype=np.int64))

    per_mode = {}
    for mode in sorted(set(label_arr[~healthy].tolist())):
        rows = label_arr == mode
        detected = int((alarm & rows).sum())
        recall = _ratio(detected, int(rows.sum()))
        precision = _ratio(detected, detected + false_alarms)
        ep = episodes.get(mode)
        per_mode[mode] = ModeMetrics(
            events=int(rows.sum()),
            detected=detected,
            recall=recall,
            precision=precision,
            f1=_f1(precision, recall),
            **(ep.metrics() if ep is not None else {}),
        )
    precision = _ratio(true_alarms, true_alarms + false_alarms)
    recall = _ratio(true_alarms, n_fail)
    fa_rate = _ratio(false_alarms * 10_000, n_healthy)
    return Evaluation(
        threshold=float(threshold),
        events=n,
        healthy=n_healthy,
        failures=n_fail,
        alarms=int(alarm.sum()),
        false_alarms=false_alarms,
        false_alarms_per_10k=fa_rate,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        per_mode=per_mode,
    )


@dataclass
class _Episodes:
    count: int = 0
    detected: int = 0
    censored: int = 0
    ongoing: int = 0
    delays_ms: list[int] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        delays = np.asarray(self.delays_ms, dtype=np.float64) / 1000.0
        has = delays.size > 0
        return {
            "episodes": self.count,
            "episodes_detected": self.detected,
            "episode_recall": _ratio(self.detected, self.count - self.ongoing),
            "censored": self.censored,
            "ongoing": self.ongoing,
            "delay_s_median": float(np.median(delays)) if has else None,
            "delay_s_p90": float(np.quantile(delays, 0.9)) if has else None,
            "delay_s_max": float(delays.max()) if has else None,
        }


def _episodes(
    alarm: np.ndarray, labels: np.ndarray, car_ids: Sequence[str], ts: np.ndarray
) -> dict[str, _Episodes]:
    n = len(alarm)
    if len(car_ids) != n or len(ts) != n:
        raise ValueError("car_ids and ts must have one entry per score")
    _, car = np.unique(np.asarray(car_ids, dtype=object).astype(str), return_inverse=True)
    order = np.lexsort((ts, car))
    car, ts, labels, alarm = car[order], ts[order], labels[order], alarm[order]
    first_of_car = np.ones(n, dtype=bool)
    first_of_car[1:] = car[1:] != car[:-1]
    # An episode starts where the car or the label changes, on a failure row.
    start = first_of_car.copy()
    start[1:] |= labels[1:] != labels[:-1]
    start &= labels != ""
    out: dict[str, _Episodes] = {}
    boundaries = np.flatnonzero(first_of_car | np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[boundaries[1:], n]
    end_of = dict(zip(boundaries.tolist(), ends.tolist(), strict=True))
    for i in np.flatnonzero(start).tolist():
        mode = str(labels[i])
        ep = out.setdefault(mode, _Episodes())
        ep.count += 1
        ep.censored += int(first_of_car[i])
        hits = np.flatnonzero(alarm[i : end_of[i]])
        if hits.size == 0:
            last_of_car = end_of[i] == n or bool(first_of_car[end_of[i]])
            ep.ongoing += int(last_of_car)
            continue
        ep.detected += 1
        if not first_of_car[i]:
            ep.delays_ms.append(int(ts[i + hits[0]] - ts[i]))
    return out
