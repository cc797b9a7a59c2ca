"""lakeless.train without a broker: option parsing, settings, the CLI's argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lakeless.cli import app
from lakeless.config import load_settings
from lakeless.dataset import ResolvedWindow, Window
from lakeless.errors import ConfigError
from lakeless.model import Autoencoder, ModelError, split_rows
from lakeless.train import TrainError, TrainSettings, parse_offsets, settings_window


def test_parse_offsets_and_units() -> None:
    assert parse_offsets("0:100-200, 1:0-50") == Window.offsets({0: (100, 200), 1: (0, 50)})
    assert parse_offsets("3:7-").ranges == ((3, 7, None),)
    for bad in ("0:100", "x:1-2", "0:5-1", "0:1-2,0:3-4", ""):
        with pytest.raises(TrainError):
            parse_offsets(bad)
    assert TrainSettings(units="64,32,16").units == (64, 32, 16)  # type: ignore[arg-type]
    assert TrainSettings(units=" 8, 4 ").units == (8, 4)  # type: ignore[arg-type]
    for bad in ("", "8,a", "8,0"):
        with pytest.raises(ValueError, match="units"):
            TrainSettings(units=bad)  # type: ignore[arg-type]


def test_settings_name_the_window() -> None:
    assert settings_window(TrainSettings()) is None  # train() reads the whole topic then
    assert settings_window(TrainSettings(last="30m")) == Window.last("30m")
    between = settings_window(TrainSettings(start="2024-05-01T08:00Z", end="2024-05-01T09:00Z"))
    assert between == Window.between(1714550400000, 1714554000000)
    offsets = settings_window(TrainSettings(offsets="0:1-5"))
    assert offsets == Window.offsets({0: (1, 5)})
    with pytest.raises(TrainError):
        settings_window(TrainSettings(offsets="0:5-1"))
    assert settings_window(TrainSettings(same_window_as="m:1")) is None  # from the registry
    replay = ResolvedWindow("t", {0: (0, 5)}, resolved_at=1)
    assert ResolvedWindow.from_dict(replay.to_dict()) == replay


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELESS_TRAIN__UNITS", "16,8,16")
    monkeypatch.setenv("LAKELESS_TRAIN__LAST", "2h")
    monkeypatch.setenv("LAKELESS_TRAIN__MIN_ROWS", "10")
    config = load_settings().train
    assert (config.units, config.last, config.min_rows) == ((16, 8, 16), "2h", 10)
    assert TrainSettings().min_rows == 1000
    monkeypatch.setenv("LAKELESS_TRAIN__OFFSETS", "0:0-5")
    with pytest.raises(ConfigError, match="choose one window option"):
        load_settings()


def test_settings_map_to_the_model_and_are_frozen() -> None:
    config = TrainSettings(units=(8, 4, 8), epochs=3, label_free=True)
    params = config.model_params()
    assert params["units"] == (8, 4, 8) and params["healthy_only"] is False
    assert params["calibration"] == "latest"
    model = Autoencoder(**params)
    assert model.params()["calibration"] == "latest"
    assert params["aggregation"] == "mean"
    assert Autoencoder(**TrainSettings(aggregation="top3").model_params()).aggregation == "top3"
    with pytest.raises(ValueError, match="aggregation"):
        TrainSettings(aggregation="median")
    with pytest.raises(ValueError):
        TrainSettings(units=())
    with pytest.raises(ValueError):
        TrainSettings(min_rows=1)
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
        "MIN_ROWS",
        "HOLDOUT",
        "CHECK_RTOL",
    ):
        assert f"LAKELESS_TRAIN__{name}" in result.output, name
    assert "LAKELESS_PIPELINE" in result.output and "--json" in result.output
    # `lakeless.cli.main` prints a LakelessError as one line; CliRunner hands it back.
    two = runner.invoke(app, ["train", "--last", "30m", "--offsets", "0:0-5"])
    assert isinstance(two.exception, ConfigError) and two.exit_code != 0
    assert "choose one window option" in str(two.exception)
    replay = runner.invoke(app, ["train", "--last", "30m", "--same-window-as", "m:1"])
    assert replay.exit_code != 0 and "--same-window-as" in str(replay.exception)
    end_only = runner.invoke(app, ["train", "--end", "2024-01-01T00:00Z"])
    assert end_only.exit_code != 0 and "--end needs --start" in str(end_only.exception)
    units = runner.invoke(app, ["train", "--units", "8,x"])
    assert units.exit_code != 0 and "units must look like" in str(units.exception)
