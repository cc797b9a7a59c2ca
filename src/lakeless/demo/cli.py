"""``lakeless demo``: the main job (see `lakeless.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakeless.config import load_settings
from lakeless.demo import DemoOptions, DemoReport, run_demo
from lakeless.model.evaluate import Evaluation
from lakeless.stack import Stack

console = Console()


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _quality_table(evaluation: Evaluation) -> Table:
    table = Table(
        "failure mode", "events", "event recall", "episodes", "episode recall", "delay p50 s"
    )
    for mode, metrics in evaluation.per_mode.items():
        table.add_row(
            mode,
            str(metrics.events),
            _fmt(metrics.recall),
            str(metrics.episodes),
            _fmt(metrics.episode_recall),
            _fmt(metrics.delay_s_median, 0),
        )
    return table


def _show(phase: str, report: DemoReport, per_s: dict[str, float], url: str) -> None:
    rates = "  ".join(f"{topic} {rate:,.0f}/s" for topic, rate in per_s.items())
    line = f"[bold]{phase}[/]  {rates}"
    if report.evaluation is not None:
        ev = report.evaluation
        line += (
            f"  | scored {ev.events:,}, alarms {ev.alarms:,}, recall {_fmt(ev.recall)}, "
            f"false alarms/10k {_fmt(ev.false_alarms_per_10k, 1)}, model v{report.model_versions}"
        )
    console.print(line)
    for event in report.events:
        console.print(f"[yellow]{event}[/]")
    report.events.clear()


def demo(
    data_dir: Annotated[
        Path, typer.Option(envvar="LAKELESS_DATA_DIR", help="Folder for the stack's data.")
    ] = Path(".lakeless"),
    duration: Annotated[
        float | None,
        typer.Option(
            envvar="LAKELESS_DEMO_DURATION", help="Stop after S seconds (default: Ctrl-C)."
        ),
    ] = None,
    cars: Annotated[
        int, typer.Option(envvar="LAKELESS_DEMO_CARS", help="Cars in the fleet.")
    ] = 100,
    warmup: Annotated[
        float,
        typer.Option(envvar="LAKELESS_DEMO_WARMUP", help="Minutes of history to train on."),
    ] = 20.0,
    failure_rate: Annotated[
        float,
        typer.Option(envvar="LAKELESS_DEMO_FAILURE_RATE", help="Failures per car per hour."),
    ] = 12.0,
    epochs: Annotated[
        int, typer.Option(envvar="LAKELESS_DEMO_EPOCHS", help="Training epochs.")
    ] = 10,
    dashboard_port: Annotated[
        int, typer.Option(envvar="LAKELESS_DEMO_DASHBOARD_PORT", help="Dashboard port.")
    ] = 8080,
    twin_port: Annotated[
        int, typer.Option(envvar="LAKELESS_DEMO_TWIN_PORT", help="Twin HTTP API port.")
    ] = 8081,
    keep_stack: Annotated[
        bool,
        typer.Option(envvar="LAKELESS_DEMO_KEEP_STACK", help="Leave Kafka and Mosquitto running."),
    ] = False,
) -> None:
    """Run the whole pipeline: fleet -> MQTT -> Kafka -> train -> score -> twin -> dashboard."""
    stack = Stack.from_data_dir(data_dir)
    settings = load_settings(
        kafka={"bootstrap_servers": stack.kafka.bootstrap}, mqtt={"url": stack.mqtt.url}
    )
    options = DemoOptions(
        cars=cars,
        warmup_minutes=warmup,
        failure_rate=failure_rate,
        epochs=epochs,
        duration=duration,
        dashboard_port=dashboard_port,
        twin_port=twin_port,
        keep_stack=keep_stack,
    )
    console.print(
        f"lakeless demo: {cars} cars, {warmup:g} min of history, then live; "
        f"dashboard at http://127.0.0.1:{dashboard_port}/ ; Ctrl-C stops everything."
    )
    report = run_demo(stack, settings, options, _show)
    console.rule("final report")
    trained = report.trained
    console.print(
        f"ran {report.seconds:.0f}s ({report.stopped_by}); "
        f"history {report.history_events:,} events; model {trained.get('name', '?')} "
        f"v{trained.get('version', '?')} trained from Kafka; events per topic {report.totals}"
    )
    if report.restarts:
        console.print(f"restarted stages: {report.restarts}")
    if report.evaluation is None:
        console.print("no live events were scored")
        return
    ev = report.evaluation
    console.print(
        f"live: {ev.events:,} events scored by model versions {report.model_versions}, "
        f"{ev.alarms:,} alarms, precision {_fmt(ev.precision)}, event recall {_fmt(ev.recall)}, "
        f"false alarms per 10k healthy {_fmt(ev.false_alarms_per_10k, 1)}"
    )
    console.print(_quality_table(ev))
