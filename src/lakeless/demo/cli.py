"""``lakeless demo``: the main job (see `lakeless.demo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakeless._cli import settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings
    from lakeless.demo import DemoReport
    from lakeless.model.evaluate import Evaluation

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


_shown_urls: set[str] = set()


def _show(phase: str, report: DemoReport, per_s: dict[str, float], url: str) -> None:
    if url not in _shown_urls:  # once, when the stack is up (a secured one's carries ?token=)
        _shown_urls.add(url)
        console.print(f"dashboard: {url}", soft_wrap=True)
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


@settings_command("demo")
def demo(
    settings: Settings,
    data_dir: Annotated[
        Path, typer.Option(envvar="LAKELESS_DATA_DIR", help="Folder for the stack's data.")
    ] = Path(".lakeless"),
) -> None:
    """Run the whole pipeline: devices -> MQTT -> Kafka -> train -> score -> twin -> dashboard.

    The car fleet by default; ``--pipeline pumps`` runs the same story for the pumps example.
    """
    from lakeless.stack import Stack

    options = settings.demo
    stack = Stack.from_data_dir(
        data_dir, settings.topics, brokers=options.brokers, secure=options.secure
    )
    settings = settings.model_copy(update={"data_dir": data_dir})
    console.print(
        f"lakeless demo ({settings.pipeline}): {options.cars} devices, {options.warmup:g} min "
        f"of history, then live; dashboard on port {options.dashboard_port}; "
        "Ctrl-C stops everything."
    )
    from lakeless.demo import run_demo

    report = run_demo(stack, settings, _show)
    if options.json_report is not None:
        options.json_report.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
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
