"""The training report: one PNG and one JSON file with the numbers behind it.

The PNG shows the loss curve, the score histogram with the threshold, and the recall per mode.

matplotlib is imported only when a report is written, with the non-interactive Agg backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lakeless.model.evaluate import Evaluation


def write_report(
    out_dir: str | Path,
    history: Mapping[str, Sequence[float]],
    scores: np.ndarray,
    threshold: float,
    labels: Sequence[str | None] | None = None,
    evaluation: Evaluation | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    name: str = "training-report",
) -> dict[str, Path]:
    """Write ``<name>.png`` and ``<name>.json`` into ``out_dir``.

    Args:
        out_dir: directory to write to (created if missing).
        history: per-epoch curves, e.g. ``{"loss": [...], "val_loss": [...]}``.
        scores: anomaly scores of the evaluated (held-out) rows.
        threshold: the model's threshold.
        labels: failure label per score (``None`` = healthy); ``None`` when unlabelled.
        evaluation: the `lakeless.model.evaluate.evaluate` result, when labels were present.
        extra: more JSON-able fields for the JSON file (model metadata, lineage, ONNX check).
        name: file stem.

    Returns:
        ``{"png": path, "json": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    healthy = (
        np.ones(len(s), dtype=bool)
        if labels is None
        else np.fromiter((label is None for label in labels), dtype=bool, count=len(s))
    )
    png = out / f"{name}.png"
    _plot(png, history, s, healthy, threshold, evaluation)
    summary = {
        "threshold": float(threshold),
        "history": {key: [float(v) for v in values] for key, values in history.items()},
        "scores": _score_summary(s, healthy),
        "evaluation": evaluation.to_dict() if evaluation is not None else None,
        **dict(extra or {}),
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return {"png": png, "json": path}


def _score_summary(scores: np.ndarray, healthy: np.ndarray) -> dict[str, Any]:
    def quantiles(values: np.ndarray) -> dict[str, float] | None:
        if values.size == 0:
            return None
        qs = (0.5, 0.9, 0.99, 0.999)
        return {f"p{q * 100:g}": float(np.quantile(values, q)) for q in qs} | {
            "max": float(values.max())
        }

    return {
        "healthy": {"count": int(healthy.sum()), "quantiles": quantiles(scores[healthy])},
        "failure": {"count": int((~healthy).sum()), "quantiles": quantiles(scores[~healthy])},
    }


def _plot(
    path: Path,
    history: Mapping[str, Sequence[float]],
    scores: np.ndarray,
    healthy: np.ndarray,
    threshold: float,
    evaluation: Evaluation | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.5), layout="constrained")
    loss_ax, hist_ax, mode_ax = fig.subplots(1, 3)

    for key, values in history.items():
        if values:
            loss_ax.plot(range(1, len(values) + 1), values, marker=".", label=key)
    loss_ax.set(title="Training loss", xlabel="epoch", ylabel="MSE (normalized units)")
    if any(history.values()):
        loss_ax.set_yscale("log")
        loss_ax.legend()

    positive = scores[scores > 0]
    low = float(positive.min()) if positive.size else 1e-6
    high = max(float(scores.max(initial=0.0)), threshold) * 1.5
    bins = np.geomspace(max(low, 1e-9), max(high, low * 10), 60)
    for mask, label, color in ((healthy, "healthy", "tab:blue"), (~healthy, "failure", "tab:red")):
        if mask.any():
            hist_ax.hist(
                np.clip(scores[mask], bins[0], None), bins=bins, alpha=0.6, label=label, color=color
            )
    hist_ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    hist_ax.set(title="Anomaly score (reconstruction error)", xlabel="score", ylabel="events")
    hist_ax.set_xscale("log")
    hist_ax.set_yscale("log")
    hist_ax.legend()

    if evaluation is not None and evaluation.per_mode:
        modes = list(evaluation.per_mode)
        event = [evaluation.per_mode[m].recall or 0.0 for m in modes]
        episode = [evaluation.per_mode[m].episode_recall for m in modes]
        y = np.arange(len(modes))
        mode_ax.barh(y - 0.2, event, height=0.4, label="events")
        if all(v is not None for v in episode):
            mode_ax.barh(y + 0.2, [float(v or 0.0) for v in episode], height=0.4, label="episodes")
        mode_ax.set_yticks(y, modes)
        mode_ax.set_xlim(0, 1)
        fa = evaluation.false_alarms_per_10k
        fa_text = "n/a" if fa is None else f"{fa:.2f}"
        mode_ax.set(
            title=f"Recall per failure mode ({fa_text} false alarms / 10k healthy)", xlabel="recall"
        )
        mode_ax.legend(loc="lower right")
    else:
        mode_ax.set_axis_off()
        mode_ax.text(0.5, 0.5, "no labels: no evaluation", ha="center", va="center")
    fig.savefig(path, dpi=100)
