"""``lakeless train``: train on a Kafka window, evaluate, export to ONNX, register."""

import json
from typing import TYPE_CHECKING, Annotated

import typer

from lakeless._cli import console, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings
    from lakeless.train import TrainResult


@settings_command("train")
def train(
    settings: "Settings",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
) -> None:
    """Train the autoencoder on a window of the clean topic and register it (ONNX, lineage).

    The window: --last, --start/--end, --offsets, --same-window-as, or (none given) every
    record of the topic. The model is evaluated on the rows it never trained on, checked in
    ONNX Runtime against Keras, and registered as a candidate (live with --promote).
    """
    from lakeless.model import rich_progress
    from lakeless.pipeline import resolve_pipeline
    from lakeless.train import train as run_training

    pipeline = resolve_pipeline(settings)
    with rich_progress(console=console, transient=True) as progress:
        result = run_training(
            settings,
            pipeline,
            progress=progress,
            step=lambda message: console.print(f"train: {message}"),
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)


def _print_result(result: "TrainResult") -> None:
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
