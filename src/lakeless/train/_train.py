"""One training run: window -> read -> fit -> evaluate -> report -> ONNX -> registry.

`train` is what ``lakeless train`` runs and what a notebook calls: the same code path in both,
so a model found in a notebook is registered exactly as production would register it.

The steps:

1. resolve the window to exact per-partition offsets (or take them from a registered model's
   lineage, ``same_window_as``: a replay with other hyperparameters);
2. read it (`lakeless.dataset.KafkaDataset`, all partitions in parallel);
3. fit the autoencoder (healthy rows only when the window carries labels, unless
   ``label_free``), calibrating the threshold on held-out rows;
4. evaluate on the rows it never trained on (``fit_info.holdout_index``) when labels are present;
5. write the report (PNG + JSON);
6. export to ONNX and check that ONNX Runtime reproduces Keras within the tolerance (else
   `lakeless.model.OnnxMismatchError`, and nothing is registered);
7. register with lineage = the resolved window, metrics = the evaluation; optionally promote.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakeless.config import Settings
from lakeless.dataset import DatasetError, ResolvedWindow, Window
from lakeless.errors import LakelessError
from lakeless.pipeline import Pipeline
from lakeless.train._settings import TrainSettings

if TYPE_CHECKING:
    from lakeless.model import Autoencoder, Evaluation, OnnxCheck, ProgressCallback
    from lakeless.registry import ModelRecord

__all__ = ["TrainError", "TrainResult", "parse_offsets", "settings_window", "train"]

logger = logging.getLogger(__name__)

#: Rows of the window scored by both Keras and ONNX Runtime to check the export.
CHECK_ROWS = 20_000


class TrainError(LakelessError):
    """A training run cannot start or finish (empty window, conflicting options, no lineage)."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        record: the registered model (its ``version``, ``lineage``, ``metrics`` ...).
        window: the resolved window it was trained on (``record.lineage`` is its ``to_dict``).
        evaluation: detection quality on the rows never trained on; ``None`` without labels.
        report: paths of the report files, ``{"png": ..., "json": ...}``.
        onnx_check: how closely ONNX Runtime reproduced Keras.
        promoted: whether the version was made live.
        seconds: wall time per step (``read``, ``fit``, ``evaluate``, ``report``, ``export``,
            ``register``) and ``total``.
        model: the fitted model, for a closer look in a notebook.
    """

    record: ModelRecord
    window: ResolvedWindow
    evaluation: Evaluation | None
    report: dict[str, Path]
    onnx_check: OnnxCheck
    promoted: bool
    seconds: dict[str, float]
    model: Autoencoder = field(repr=False)

    @property
    def version(self) -> int:
        """The registered version."""
        return self.record.version

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (what ``lakeless train --json`` prints)."""
        fit = self.model.fit_info
        return {
            "name": self.record.name,
            "version": self.record.version,
            "ref": self.record.ref,
            "stage": "live" if self.promoted else self.record.stage,
            "sha256": self.record.sha256,
            "size": self.record.size,
            "threshold": self.record.threshold,
            "window": self.window.to_dict(),
            "rows": fit.n_rows if fit else None,
            "fit": fit.to_dict() if fit else None,
            "params": self.record.params,
            "metrics": self.record.metrics,
            "onnx_check": self.onnx_check.to_dict(),
            "report": {kind: str(path) for kind, path in self.report.items()},
            "seconds": self.seconds,
        }


def parse_offsets(text: str) -> Window:
    """An offsets window from ``"0:100-200,1:0-50"`` (``PARTITION:START-END``, end exclusive).

    An empty end (``"2:50-"``) reads up to the end of the partition as it is when resolved.

    Raises:
        TrainError: malformed text.

    Example:
        >>> parse_offsets("0:100-200,1:0-50,2:7-")
        Window.offsets({0: (100, 200), 1: (0, 50), 2: (7, None)})
    """
    ranges: dict[int, tuple[int, int | None]] = {}
    try:
        for part in text.split(","):
            partition, _, span = part.strip().partition(":")
            start, dash, end = span.partition("-")
            if not dash:
                raise ValueError(part)
            p = int(partition)
            if p in ranges:
                raise TrainError(f"partition {p} given twice in {text!r}")
            ranges[p] = (int(start), int(end) if end.strip() else None)
        return Window.offsets(ranges)
    except (ValueError, DatasetError) as exc:
        raise TrainError(
            f"offsets must look like 0:100-200,1:0-50 (PARTITION:START-END), got {text!r}"
        ) from exc


def _replay_window(settings: Settings, ref: str) -> ResolvedWindow:
    from lakeless.registry import Registry

    name, _, version = ref.partition(":")
    if not version.isdigit():
        raise TrainError(f"same_window_as needs NAME:VERSION (a version number), got {ref!r}")
    with Registry(settings) as registry:
        state = registry.state()
        summary = state.summary(name, state.resolve(name, int(version)))
    if not summary.lineage:
        raise TrainError(f"model {ref} has no lineage: its training window is unknown")
    try:
        return ResolvedWindow.from_dict(summary.lineage)
    except DatasetError as exc:
        raise TrainError(f"model {ref}: its lineage is not a window: {exc}") from exc


def settings_window(config: TrainSettings) -> Window | None:
    """The window the settings' ``last``/``start``/``end``/``offsets`` name (``None``: none)."""
    if config.last is not None:
        return Window.last(config.last)
    if config.start is not None:
        return Window.between(config.start, config.end)
    if config.offsets is not None:
        return parse_offsets(config.offsets)
    return None


def _resolve(
    settings: Settings, pipeline: Pipeline, window: Window | ResolvedWindow | None
) -> tuple[str, Window | ResolvedWindow]:
    config: TrainSettings = settings.train
    topic = config.topic or pipeline.topics.clean
    window = window if window is not None else settings_window(config)
    if config.same_window_as is None:
        return topic, window if window is not None else Window.all()
    if window is not None:
        raise TrainError("give either a window or same_window_as, not both")
    replay = _replay_window(settings, config.same_window_as)
    if config.topic is not None and config.topic != replay.topic:
        raise TrainError(
            f"model {config.same_window_as} was trained on {replay.topic!r}, not {config.topic!r}"
        )
    return replay.topic, replay


def _next_version(settings: Settings, name: str) -> int:
    from lakeless.registry import Registry, RegistryError

    try:
        with Registry(settings) as registry:
            return registry.state().next_version(name)
    except RegistryError:
        return 1  # no registry topic yet: registering will say what is wrong


def train(
    settings: Settings,
    pipeline: Pipeline | None = None,
    window: Window | ResolvedWindow | None = None,
    *,
    progress: ProgressCallback | None = None,
    step: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train, evaluate, export, check and register one model version.

    Args:
        settings: Kafka connection, topic names, ``data_dir`` and what and how to train
            (``settings.train``).
        pipeline: the pipeline (default: the built-in car fleet).
        window: the records to train on (default: the settings' window, else all of them).
        progress: receives `lakeless.model.TrainProgress` reports while fitting (see
            `lakeless.model.rich_progress`).
        step: called with a short message as each step starts (the CLI prints them).

    Returns:
        The `TrainResult`; ``result.record`` is the registered version.

    Raises:
        TrainError: conflicting options, an empty window, a replayed model without lineage.
        DatasetError: the window cannot be resolved or read.
        OnnxMismatchError: ONNX Runtime does not reproduce Keras within the tolerance.
        RegistryError: registering or promoting failed.

    Example:
        In a notebook (needs a broker, so not run here)::

            >>> settings = load_settings(train={"epochs": 5})  # doctest: +SKIP
            >>> result = train(settings, window=Window.last("30m"))  # doctest: +SKIP
            >>> result.version, result.evaluation.false_alarms_per_10k  # doctest: +SKIP
            (3, 4.2)
    """
    from lakeless.dataset import KafkaDataset
    from lakeless.model import Autoencoder, check_onnx, evaluate, write_report
    from lakeless.registry import Registry

    config: TrainSettings = settings.train
    pipeline = pipeline or Pipeline.builtin(settings)
    name = config.name or pipeline.model
    say = step or (lambda _message: None)
    seconds: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    topic, resolved_window = _resolve(settings, pipeline, window)
    dataset = KafkaDataset(settings.kafka, topic, resolved_window, pipeline=pipeline)
    resolved = dataset.window
    say(f"reading {resolved.describe()}")
    batch = dataset.to_numpy()
    if len(batch) == 0:
        raise TrainError(f"nothing to train on: {resolved.describe()}")
    x = batch.features(np.float32)
    ts = batch.time
    labels: Sequence[str | None] = batch.label
    labelled = any(label is not None for label in labels)
    healthy = sum(label is None for label in labels) if labelled else len(labels)
    if (healthy if not config.label_free else len(labels)) < config.min_rows:
        raise TrainError(
            f"only {healthy:,} healthy rows in {resolved.describe()}: at least "
            f"{config.min_rows:,} are needed to train (--min-rows); nothing was registered"
        )
    lap("read")

    say(f"fitting on {len(x):,} rows ({'labelled' if labelled else 'no labels'})")
    model = Autoencoder(**config.model_params(x.shape[1]))
    model.fit(
        x,
        labels if labelled and not config.label_free else None,
        ts=ts,
        progress=progress,
        feature_names=pipeline.schema.feature_names,
    )
    assert model.fit_info is not None and model.threshold is not None
    lap("fit")

    held = model.fit_info.holdout_index
    scores = model.score(x[held])
    held_labels = [labels[i] for i in held.tolist()] if labelled else None
    evaluation = None
    if held_labels is not None:
        evaluation = evaluate(
            scores,
            model.threshold,
            held_labels,
            [batch.key[i] for i in held.tolist()],
            ts[held],
        )
    lap("evaluate")

    say("exporting to ONNX and checking it against Keras")
    onnx_bytes = model.to_onnx()
    check_idx = _check_rows(len(x), config.seed)
    check = check_onnx(
        onnx_bytes,
        x[check_idx],
        *model.score_with_errors(x[check_idx]),
        threshold=model.threshold,
        rtol=config.check_rtol,
        atol=config.check_atol,
    )
    lap("export")

    version = _next_version(settings, name)
    report_dir = config.report_dir or _default_report_dir(settings, name, version)
    metadata = model.metadata()
    extra = {
        "name": name,
        "pipeline": pipeline.name,
        "model": {key: metadata[key] for key in ("kind", "params", "fit", "feature_scale")},
        "lineage": resolved.to_dict(),
        "onnx_check": check.to_dict(),
        "same_window_as": config.same_window_as,
    }
    paths = write_report(
        report_dir, model.history, scores, model.threshold, held_labels, evaluation, extra=extra
    )
    report_summary = json.loads(paths["json"].read_text())
    report_summary.pop("evaluation", None)  # it is the record's metrics
    report_summary.pop("lineage", None)  # it is the record's lineage
    lap("report")

    registry_at = settings.registry.kafka(settings.kafka).bootstrap_servers
    say(f"registering {name} on {settings.topics.models} at {registry_at}")
    with Registry(settings) as registry:
        record = registry.register(
            name,
            onnx_bytes,
            threshold=model.threshold,
            features=metadata["features"],
            pipeline=pipeline.name,
            schema_fingerprint=pipeline.schema.fingerprint_hex,
            normalization=model.normalization,
            metrics=evaluation.to_dict() if evaluation is not None else {},
            lineage=resolved.to_dict(),
            frameworks=model.framework_versions(),
            params=model.params(),
            report={**report_summary, "files": {k: str(p) for k, p in paths.items()}},
            description=config.description
            or (f"replay of {config.same_window_as}" if config.same_window_as else ""),
        )
        if record.version != version and config.report_dir is None:
            paths = _move_report(paths, _default_report_dir(settings, name, record.version))
        if config.promote:
            registry.promote(
                name, record.version, features=pipeline.schema.feature_names, pipeline=pipeline.name
            )
    lap("register")
    seconds["total"] = round(time.perf_counter() - started, 3)
    logger.info(
        "trained %s on %s in %.1fs (fit %.1fs)",
        record.ref,
        resolved.describe(),
        seconds["total"],
        seconds["fit"],
    )
    return TrainResult(
        record=record,
        window=resolved,
        evaluation=evaluation,
        report=paths,
        onnx_check=check,
        promoted=config.promote,
        seconds=seconds,
        model=model,
    )


def _check_rows(n: int, seed: int | None) -> np.ndarray:
    if n <= CHECK_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, CHECK_ROWS, replace=False))


def _default_report_dir(settings: Settings, name: str, version: int) -> Path:
    return Path(settings.data_dir) / "reports" / f"{name}-v{version}"


def _move_report(paths: Mapping[str, Path], folder: Path) -> dict[str, Path]:
    """Another run took the version this report was named after: follow the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    return {kind: path.replace(folder / path.name) for kind, path in paths.items()}
