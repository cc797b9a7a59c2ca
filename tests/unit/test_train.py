"""lakeless.train without a broker: option parsing, settings, the CLI's argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lakeless.cli import app
from lakeless.dataset import ResolvedWindow, Window
from lakeless.model import Autoencoder, ModelError, split_rows
from lakeless.train import TrainError, TrainSettings, parse_offsets, parse_units


def test_parse_offsets_and_units() -> None:
    assert parse_offsets("0:100-200, 1:0-50") == Window.offsets({0: (100, 200), 1: (0, 50)})
    assert parse_offsets("3:7-").ranges == ((3, 7, None),)
    for bad in ("0:100", "x:1-2", "0:5-1", "0:1-2,0:3-4", ""):
        with pytest.raises(TrainError):
            parse_offsets(bad)
    assert parse_units("64,32,16") == (64, 32, 16)
    for bad in ("", "8,a", "8,0"):
        with pytest.raises(TrainError):
            parse_units(bad)


def test_settings_map_to_the_model_and_are_frozen() -> None:
    config = TrainSettings(units=(8, 4, 8), epochs=3, label_free=True)
    params = config.model_params()
    assert params["units"] == (8, 4, 8) and params["healthy_only"] is False
    assert params["calibration"] == "latest"
    model = Autoencoder(**params)
    assert model.params()["calibration"] == "latest"
    assert TrainSettings().window == Window.all()
    replay = ResolvedWindow("t", {0: (0, 5)}, resolved_at=1)
    assert TrainSettings(window=replay).window is replay
    with pytest.raises(ValueError):
        TrainSettings(units=())
    with pytest.raises(ValueError):
        TrainSettings(threshold_quantile=1.0)
    with pytest.raises(ValueError):
        TrainSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        config.epochs = 4  # type: ignore[misc]


def test_latest_calibration_holds_out_the_end_of_the_window() -> None:
    ts = np.array([50, 10, 40, 20, 30, 60, 70, 0])
    labels = [None, None, None, None, None, "shock", None, None]
    train, calib, held = split_rows(8, labels, holdout=0.3, calibration="latest", ts=ts)
    assert calib.tolist() == [0, 2, 6]  # the 3 latest of 7 healthy rows (ts 70, 50, 40)
    assert train.tolist() == [1, 3, 4, 7]
    assert held.tolist() == [0, 2, 5, 6]
    # Without timestamps, row order is time order.
    assert split_rows(4, None, holdout=0.5, calibration="latest")[1].tolist() == [2, 3]
    with pytest.raises(ModelError):
        split_rows(4, None, calibration="oldest")
    with pytest.raises(ModelError):
        split_rows(4, None, calibration="latest", ts=[1, 2])
    with pytest.raises(ModelError):
        Autoencoder(calibration="oldest")


def test_cli_help_shows_every_env_var_and_refuses_two_windows() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in (
        "LAST",
        "START",
        "END",
        "OFFSETS",
        "SAME_WINDOW_AS",
        "TOPIC",
        "NAME",
        "UNITS",
        "EPOCHS",
        "BATCH_SIZE",
        "LEARNING_RATE",
        "THRESHOLD_QUANTILE",
        "CALIBRATION",
        "LABEL_FREE",
        "SEED",
        "REPORT_DIR",
        "PROMOTE",
        "DESCRIPTION",
        "JSON",
    ):
        assert f"LAKELESS_TRAIN_{name}" in result.output, name
    two = runner.invoke(app, ["train", "--last", "30m", "--offsets", "0:0-5"])
    assert two.exit_code != 0 and "choose one window option" in two.output
    replay = runner.invoke(app, ["train", "--last", "30m", "--same-window-as", "m:1"])
    assert replay.exit_code != 0 and "--same-window-as" in replay.output
    end_only = runner.invoke(app, ["train", "--end", "2024-01-01T00:00Z"])
    assert end_only.exit_code != 0 and "--end needs --start" in end_only.output
