"""The contract every anomaly model class honours (run for each entry of `MODELS`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from lakeless.fleet import Fleet
from lakeless.model import (
    MODELS,
    BaseAnomalyModel,
    ModelError,
    NotFittedError,
    OnnxScorer,
    calibrate_threshold,
    check_onnx,
    split_rows,
)
from lakeless.testing.models import FEATURES

#: Small and fast settings per model class (the defaults train for minutes on real windows).
FAST: dict[str, dict[str, Any]] = {"autoencoder": {"epochs": 2, "batch_size": 128}}
#: Hyperparameters that change what the exported graph computes: each is held to the contract.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    name: (name, FAST.get(name, {})) for name in MODELS
} | {
    "autoencoder[max]": ("autoencoder", {**FAST["autoencoder"], "aggregation": "max"}),
    "autoencoder[top3]": ("autoencoder", {**FAST["autoencoder"], "aggregation": "top3"}),
}


def window(cars: int, steps: int, seed: int) -> tuple[np.ndarray, list[str | None]]:
    fleet = Fleet(cars=cars, seed=seed, start=0, failure_rate=20.0, ramp=5.0)
    batches = [fleet.step() for _ in range(steps)]
    values = np.concatenate([b.values for b in batches])
    labels = [label for b in batches for label in b.labels()]
    return values, labels


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, list[str | None]]:
    return window(cars=30, steps=100, seed=3)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def fitted(request: pytest.FixtureRequest, data: Any) -> BaseAnomalyModel:
    x, labels = data
    name, params = VARIANTS[request.param]
    model = MODELS[name](**params)
    assert model.fit(x, labels, feature_names=FEATURES) is model
    return model


def test_data_has_failures(data: Any) -> None:
    _, labels = data
    assert 0 < sum(label is not None for label in labels) < len(labels) // 2


def test_threshold_is_the_held_out_quantile(fitted: BaseAnomalyModel, data: Any) -> None:
    x, labels = data
    _, calib, held = split_rows(
        len(x),
        labels,
        healthy_only=True,
        holdout=fitted.holdout,
        seed=fitted.seed,
        calibration=fitted.calibration,
    )
    assert fitted.threshold == calibrate_threshold(
        fitted.score(x[calib]), fitted.threshold_quantile
    )
    assert all(labels[i] is None for i in calib)
    failures = [i for i, label in enumerate(labels) if label is not None]
    assert set(failures) <= set(held.tolist())
    assert fitted.fit_info is not None
    assert fitted.fit_info.holdout_index.tolist() == held.tolist()
    assert fitted.fit_info.n_train + fitted.fit_info.n_calibration + len(failures) == len(x)


def test_scores_and_feature_errors(fitted: BaseAnomalyModel, data: Any) -> None:
    x, _ = data
    scores, errors = fitted.score_with_errors(x[:50])
    assert scores.shape == (50,) and errors.shape == (50, len(FEATURES))
    assert scores.dtype == np.float32 and errors.dtype == np.float32
    assert (errors >= 0).all()
    np.testing.assert_allclose(errors.sum(axis=1), scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(fitted.score(x[:50]), scores)
    assert fitted.threshold is not None
    np.testing.assert_array_equal(fitted.predict(x[:50]), scores > fitted.threshold)


def test_failures_score_higher_than_healthy(fitted: BaseAnomalyModel, data: Any) -> None:
    x, labels = data
    scores = fitted.score(x)
    sick = np.array([label is not None for label in labels])
    assert np.median(scores[sick]) > np.median(scores[~sick])


def test_onnx_honours_the_contract_and_matches(fitted: BaseAnomalyModel, data: Any) -> None:
    x, _ = data
    onnx_bytes = fitted.to_onnx()
    scorer = OnnxScorer(onnx_bytes, n_features=len(FEATURES))
    scores, errors = scorer.score(x[:7])
    assert scores.shape == (7,) and errors.shape == (7, len(FEATURES))
    want, want_errors = fitted.score_with_errors(x)
    check = check_onnx(onnx_bytes, x, want, want_errors, threshold=fitted.threshold)
    assert check.rows == len(x)
    assert check.max_rel_diff < 1e-4
    assert check.decisions_differ == 0
    json.dumps(check.to_dict())


def test_metadata_and_params(fitted: BaseAnomalyModel) -> None:
    meta = fitted.metadata()
    json.dumps(meta)
    assert meta["features"] == list(FEATURES) and fitted.feature_names == FEATURES
    assert meta["threshold"] == fitted.threshold
    assert len(meta["normalization"]["mean"]) == len(FEATURES)
    assert meta["framework_versions"]["onnx"]
    clone = fitted.clone()
    assert clone.params() == fitted.params()
    assert clone.threshold is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unfitted_and_bad_input(name: str, data: Any) -> None:
    x, labels = data
    model = MODELS[name](**FAST.get(name, {}))
    with pytest.raises(NotFittedError):
        model.score(x)
    with pytest.raises(NotFittedError):
        model.to_onnx()
    with pytest.raises(ModelError):
        model.fit(x[:, :3].ravel())
    with pytest.raises(ModelError):
        model.fit(x, labels[:-1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ModelError):
        model.fit(bad)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_label_free_fit_uses_every_row(name: str, data: Any) -> None:
    x, labels = data
    x = x[:1000]
    model = MODELS[name](**FAST.get(name, {}), healthy_only=False).fit(x, labels[:1000])
    assert model.fit_info is not None
    assert model.fit_info.n_train + model.fit_info.n_calibration == len(x)
    unlabelled = MODELS[name](**FAST.get(name, {})).fit(x)
    assert unlabelled.fit_info is not None and not unlabelled.fit_info.healthy_only
    with pytest.raises(ModelError):
        unlabelled.score(x[:, :5])
    # Without names the columns are x0, x1, ...; a model of fewer columns names its own.
    assert unlabelled.metadata()["features"] == [f"x{i}" for i in range(x.shape[1])]
    names = ("speed", "coolant_temp", "battery_voltage")
    three = MODELS[name](**FAST.get(name, {})).fit(x[:, [6, 0, 4]], feature_names=names)
    assert three.metadata()["features"] == list(names)
    assert len(three.metadata()["normalization"]["mean"]) == 3
    with pytest.raises(ModelError, match="2 feature names for 3 columns"):
        MODELS[name](**FAST.get(name, {})).fit(x[:, :3], feature_names=names[:2])
