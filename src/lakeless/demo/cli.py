"""``lakeless demo``: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lakeless.config import load_settings
from lakeless.demo import run_demo
from lakeless.stack import Stack

console = Console()


def demo(
    data_dir: Annotated[
        Path, typer.Option(envvar="LAKELESS_DATA_DIR", help="Folder for the stack's data.")
    ] = Path(".lakeless"),
    events: Annotated[
        int, typer.Option(envvar="LAKELESS_DEMO_EVENTS", help="Events to push through Kafka.")
    ] = 5000,
) -> None:
    """Start the stack, create the topics, push events through Kafka and read them back."""
    stack = Stack.from_data_dir(data_dir)
    settings = load_settings(kafka={"bootstrap_servers": stack.kafka.bootstrap})
    with console.status("running the demo..."):
        report = run_demo(stack, settings, events)
    console.print(f"Kafka [bold]{report.bootstrap}[/] and MQTT [bold]{report.mqtt_url}[/] are up.")
    if report.topics_created:
        console.print(f"Created topics: {', '.join(report.topics_created)}")
    console.print(
        f"Wrote {report.produced} sensor events to {settings.topics.raw} and read back "
        f"{report.read_back} in {report.seconds:.1f}s."
    )
    console.print(
        f"The stack keeps running; stop it with `lakeless stack down --data-dir {data_dir}`."
    )
    if report.read_back != report.produced:
        raise typer.Exit(1)
