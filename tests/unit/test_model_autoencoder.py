"""The Keras autoencoder: architecture, options, determinism, progress, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lakeless.fleet import Fleet
from lakeless.model import (
    Autoencoder,
    ModelError,
    TrainProgress,
    check_onnx,
    evaluate,
    write_report,
)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, list[str | None]]:
    fleet = Fleet(cars=20, seed=5, start=0, failure_rate=20.0, ramp=5.0)
    batches = [fleet.step() for _ in range(100)]
    return (
        np.concatenate([b.values for b in batches]),
        [label for b in batches for label in b.labels()],
    )


def test_default_architecture_is_the_talks() -> None:
    model = Autoencoder()
    assert model.units == (14, 7, 7, 14)
    assert model.params()["units"] == [14, 7, 7, 14]


def test_fit_architecture_progress_and_determinism(data: Any) -> None:
    x, labels = data
    reports: list[TrainProgress] = []
    first = Autoencoder(epochs=2, batch_size=128, seed=7).fit(x, labels, progress=reports.append)
    widths = [layer.units for layer in first._network.layers]
    assert widths == [14, 7, 7, 14, 18]
    assert first._network.layers[-1].activation.__name__ == "linear"
    assert len(first.history["loss"]) == 2 and len(first.history["val_loss"]) == 2
    ends = [r for r in reports if r.done]
    assert [r.epoch for r in ends] == [1, 2] and all(r.val_loss is not None for r in ends)
    steps = [(r.step, r.steps) for r in reports if not r.done and r.epoch == 1]
    assert steps and steps[-1][0] == steps[-1][1]  # the bar ends full, never past it
    assert all(0 < step <= total for step, total in steps)
    assert len(first.feature_scale) == 18
    second = Autoencoder(epochs=2, batch_size=128, seed=7).fit(x, labels)
    np.testing.assert_array_equal(first.score(x[:200]), second.score(x[:200]))
    assert first.threshold == second.threshold


def test_plain_mse_option_and_early_stopping(data: Any) -> None:
    x, labels = data
    model = Autoencoder(
        units=(8,), epochs=3, batch_size=128, error_scale="none", patience=1, validation_split=0.2
    ).fit(x, labels)
    assert model.feature_scale == [1.0] * 18
    scores, _ = model.score_with_errors(x[:10])
    z = (x[:10] - np.array(model.normalization["mean"])) / np.array(model.normalization["std"])
    recon = model._network.predict(z.astype(np.float32), verbose=0)
    np.testing.assert_allclose(scores, np.mean((recon - z) ** 2, axis=1), rtol=1e-3, atol=1e-5)
    onnx_bytes = model.to_onnx()
    want, want_errors = model.score_with_errors(x)
    check = check_onnx(onnx_bytes, x, want, want_errors, threshold=model.threshold)
    assert check.decisions_differ == 0 and check.max_rel_diff < 1e-4
    with pytest.raises(ModelError):
        Autoencoder(error_scale="max")
    with pytest.raises(ModelError):
        Autoencoder(units=())


def test_report_written(tmp_path: Path, data: Any) -> None:
    x, labels = data
    rng = np.random.default_rng(0)
    scores = rng.lognormal(size=len(x))
    ev = evaluate(scores, 3.0, labels)
    history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.35]}
    paths = write_report(tmp_path / "r", history, scores, 3.0, labels, ev, extra={"model": "x"})
    assert paths["png"].stat().st_size > 10_000
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["json"].read_text())
    assert summary["threshold"] == 3.0 and summary["model"] == "x"
    assert summary["evaluation"]["per_mode"].keys() == ev.per_mode.keys()
    assert summary["scores"]["healthy"]["count"] == ev.healthy
    unlabelled = write_report(tmp_path / "u", {}, scores, 3.0)
    assert json.loads(unlabelled["json"].read_text())["evaluation"] is None


def test_rich_progress_draws_every_epoch() -> None:
    import io

    from rich.console import Console

    from lakeless.model import rich_progress

    out = io.StringIO()
    with rich_progress(console=Console(file=out, width=120, force_terminal=False)) as update:
        for epoch in (1, 2):
            update(TrainProgress(epoch, 2, 5, 10, 0.5))
            update(TrainProgress(epoch, 2, 10, 10, 0.25, 0.3, done=True))
    text = out.getvalue()
    # Not a terminal (a log, CI): one line per finished epoch, in Keras' words.
    assert text.splitlines() == [
        "epoch 1/2: loss 0.25, val_loss 0.3",
        "epoch 2/2: loss 0.25, val_loss 0.3",
    ]
