"""``lakeless train``: train on a Kafka window, evaluate, export to ONNX, register."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from lakeless.dataset import Window
    from lakeless.train import TrainResult


class Calibration(StrEnum):
    """Which held-out rows calibrate the threshold."""

    latest = "latest"
    random = "random"


def _env(name: str) -> str:
    return f"LAKELESS_TRAIN_{name}"


def train(
    last: Annotated[
        str | None,
        typer.Option(envvar=_env("LAST"), help="Window: the last DURATION (e.g. 30m, 2h, 1d)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(envvar=_env("START"), help="Window start, ISO 8601 with a timezone."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(envvar=_env("END"), help="Window end (exclusive), ISO 8601; default now."),
    ] = None,
    offsets: Annotated[
        str | None,
        typer.Option(
            envvar=_env("OFFSETS"),
            help='Window by offsets: "0:100-200,1:0-50" (PARTITION:START-END, end exclusive).',
        ),
    ] = None,
    same_window_as: Annotated[
        str | None,
        typer.Option(
            envvar=_env("SAME_WINDOW_AS"),
            metavar="NAME:VERSION",
            help="Replay: train on exactly the offsets this registered model was trained on.",
        ),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(envvar=_env("TOPIC"), help="sensor-clean topic [LAKELESS_TOPICS__CLEAN]."),
    ] = None,
    name: Annotated[
        str, typer.Option(envvar=_env("NAME"), help="Registry name of the model.")
    ] = "car-autoencoder",
    units: Annotated[
        str, typer.Option(envvar=_env("UNITS"), help="Hidden layer widths, comma-separated.")
    ] = "14,7,7,14",
    epochs: Annotated[int, typer.Option(envvar=_env("EPOCHS"), min=1, help="Epochs.")] = 20,
    batch_size: Annotated[
        int, typer.Option(envvar=_env("BATCH_SIZE"), min=1, help="Rows per gradient step.")
    ] = 256,
    learning_rate: Annotated[
        float, typer.Option(envvar=_env("LEARNING_RATE"), min=0, help="Adam learning rate.")
    ] = 1e-3,
    threshold_quantile: Annotated[
        float,
        typer.Option(
            envvar=_env("THRESHOLD_QUANTILE"),
            min=0,
            max=1,
            help="Quantile of held-out healthy scores that becomes the threshold.",
        ),
    ] = 0.9995,
    calibration: Annotated[
        Calibration,
        typer.Option(
            envvar=_env("CALIBRATION"),
            help="Calibrate the threshold on the latest rows in time (train on the earlier "
            "ones) or on a random sample.",
        ),
    ] = Calibration.latest,
    label_free: Annotated[
        bool,
        typer.Option(
            "--label-free",
            envvar=_env("LABEL_FREE"),
            help="Train on every row, failures included (labels only evaluate).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(envvar=_env("SEED"), help="Random seed.")] = 42,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("REPORT_DIR"),
            file_okay=False,
            help="Folder of the PNG and JSON report [.lakeless/reports/NAME-vVERSION].",
        ),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote", envvar=_env("PROMOTE"), help="Make the new version live at once."
        ),
    ] = False,
    description: Annotated[
        str, typer.Option(envvar=_env("DESCRIPTION"), help="Free text stored with the model.")
    ] = "",
    as_json: Annotated[
        bool,
        typer.Option("--json", envvar=_env("JSON"), help="Print a JSON summary on stdout."),
    ] = False,
) -> None:
    """Train the autoencoder on a window of sensor-clean and register it (ONNX, with lineage).

    The window: --last, --start/--end, --offsets, --same-window-as, or (none given) every
    record of the topic. The model is evaluated on the rows it never trained on, checked in
    ONNX Runtime against Keras, and registered as a candidate (live with --promote).
    """
    from rich.console import Console

    from lakeless.config import load_settings
    from lakeless.dataset import Window
    from lakeless.model import rich_progress
    from lakeless.train import TrainSettings, parse_units
    from lakeless.train import train as run_training

    window = _window(last, start, end, offsets)
    if same_window_as is not None and window is not None:
        raise typer.BadParameter("--same-window-as replays a window: give no other window option")
    config = TrainSettings(
        name=name,
        topic=topic,
        same_window_as=same_window_as,
        units=parse_units(units),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        threshold_quantile=threshold_quantile,
        calibration=calibration.value,
        label_free=label_free,
        seed=seed,
        report_dir=report_dir,
        promote=promote,
        description=description,
        window=Window.all() if window is None else window,
    )
    err = Console(stderr=True)
    with rich_progress(console=err, transient=True) as progress:
        result = run_training(
            load_settings(),
            config,
            progress=progress,
            step=lambda message: err.print(f"train: {message}"),
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)


def _window(
    last: str | None, start: str | None, end: str | None, offsets: str | None
) -> Window | None:
    from lakeless.dataset import Window
    from lakeless.train import parse_offsets

    options = (("--last", last), ("--start", start), ("--offsets", offsets))
    given = [option for option, value in options if value is not None]
    if len(given) > 1:
        raise typer.BadParameter(f"choose one window option, got {' and '.join(given)}")
    if end is not None and start is None:
        raise typer.BadParameter("--end needs --start")
    if last is not None:
        return Window.last(last)
    if start is not None:
        return Window.between(start, end)
    if offsets is not None:
        return parse_offsets(offsets)
    return None


def _print_result(result: TrainResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    record = result.record
    stage = "live" if result.promoted else record.stage
    console.print(
        f"[bold]{record.ref}[/] registered ({stage}): threshold {record.threshold:.6g}, "
        f"{result.window.describe()}, fit {result.seconds['fit']:.1f}s, "
        f"ONNX max rel diff {result.onnx_check.max_rel_diff:.2g}"
    )
    ev = result.evaluation
    if ev is None:
        console.print("no labels in the window: not evaluated")
    else:
        table = Table(
            "mode", "events", "event recall", "episodes", "episode recall", "median delay (s)"
        )
        for mode, m in ev.per_mode.items():
            table.add_row(
                mode,
                str(m.events),
                _pct(m.recall),
                "-" if m.episodes is None else str(m.episodes),
                _pct(m.episode_recall),
                "-" if m.delay_s_median is None else f"{m.delay_s_median:.0f}",
            )
        console.print(table)
        fa = ev.false_alarms_per_10k
        console.print(
            f"false alarms: {ev.false_alarms} on {ev.healthy:,} held-out healthy events "
            f"({'n/a' if fa is None else f'{fa:.2f}'} per 10k)"
        )
    console.print(f"report: {result.report['png']} and {result.report['json']}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
