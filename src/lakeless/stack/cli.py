"""``lakeless stack ...`` and ``lakeless topics ...`` commands."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakeless.config import load_settings
from lakeless.kafka import create_topics, list_topics, pipeline_topics
from lakeless.stack import Stack

stack_app = typer.Typer(help="Start, stop and inspect the embedded Kafka broker and Mosquitto.")
topics_app = typer.Typer(help="Create and list the pipeline's topics.")
console = Console()

DataDir = Annotated[
    Path, typer.Option(envvar="LAKELESS_DATA_DIR", help="Folder for broker data, logs and pids.")
]
KafkaPort = Annotated[
    int | None, typer.Option(envvar="LAKELESS_STACK_KAFKA_PORT", help="Kafka client port [9092].")
]
ControllerPort = Annotated[
    int | None,
    typer.Option(envvar="LAKELESS_STACK_CONTROLLER_PORT", help="KRaft controller port [9093]."),
]
MqttPort = Annotated[
    int | None, typer.Option(envvar="LAKELESS_STACK_MQTT_PORT", help="MQTT port [1883].")
]
Bootstrap = Annotated[
    str | None,
    typer.Option(
        envvar="LAKELESS_KAFKA__BOOTSTRAP_SERVERS", help="Kafka bootstrap servers [127.0.0.1:9092]."
    ),
]


@stack_app.command()
def up(
    data_dir: DataDir = Path(".lakeless"),
    kafka_port: KafkaPort = None,
    controller_port: ControllerPort = None,
    mqtt_port: MqttPort = None,
    tiered_storage: Annotated[
        bool,
        typer.Option(envvar="LAKELESS_STACK_TIERED_STORAGE", help="Tier old segments remotely."),
    ] = True,
) -> None:
    """Start Kafka (KRaft, tiered storage) and Mosquitto; return once both answer."""
    stack = Stack.from_data_dir(
        data_dir,
        kafka_port=kafka_port,
        controller_port=controller_port,
        mqtt_port=mqtt_port,
        tiered_storage=tiered_storage,
    )
    with console.status("starting Kafka and Mosquitto..."):
        stack.up()
    console.print(
        f"Kafka on [bold]{stack.kafka.bootstrap}[/], MQTT on [bold]{stack.mqtt.url}[/]; "
        f"data in {data_dir}. Stop with `lakeless stack down --data-dir {data_dir}`."
    )


@stack_app.command()
def down(data_dir: DataDir = Path(".lakeless")) -> None:
    """Stop Kafka and Mosquitto cleanly (SIGTERM, then wait)."""
    stopped = Stack.from_data_dir(data_dir).down()
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@stack_app.command()
def status(
    data_dir: DataDir = Path(".lakeless"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show whether Kafka and Mosquitto run, where, and with which version."""
    report = Stack.from_data_dir(data_dir).status()
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table("service", "running", "address", "pid", "details")
    kafka, mqtt = report["kafka"], report["mqtt"]
    table.add_row(
        "kafka",
        _yes(kafka["running"]),
        kafka["bootstrap"],
        str(kafka["pid"] or "-"),
        f"version {kafka['version']}, tiered storage {_yes(kafka['tiered_storage'])}",
    )
    table.add_row("mqtt", _yes(mqtt["running"]), mqtt["url"], str(mqtt["pid"] or "-"), "")
    console.print(table)


@stack_app.command()
def logs(
    data_dir: DataDir = Path(".lakeless"),
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option(help="Lines to show from each log.")] = 50,
) -> None:
    """Print the broker's and Mosquitto's logs."""
    stack = Stack.from_data_dir(data_dir)
    files = [stack.kafka.home / "logs" / "server.log", stack.mqtt.home / "mosquitto.log"]
    existing = [str(f) for f in files if f.exists()]
    if not existing:
        console.print(f"no logs in {data_dir} yet")
        return
    argv = ["tail", "-n", str(lines), *(["-F"] if follow else []), *existing]
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(argv, check=False)


@topics_app.command("create")
def topics_create(
    bootstrap: Bootstrap = None,
    partitions: Annotated[
        int | None, typer.Option(envvar="LAKELESS_TOPICS__PARTITIONS", help="Partitions [6].")
    ] = None,
) -> None:
    """Create the pipeline's topics (existing ones are left as they are)."""
    settings = load_settings(**_overrides(bootstrap, partitions))
    specs = pipeline_topics(settings.topics)
    created = create_topics(settings.kafka, specs)
    table = Table("topic", "partitions", "config", "status")
    for spec in specs:
        config = ", ".join(f"{k}={v}" for k, v in spec.config.items())
        table.add_row(
            spec.name, str(spec.partitions), config, "created" if created[spec.name] else "exists"
        )
    console.print(table)


@topics_app.command("list")
def topics_list(bootstrap: Bootstrap = None) -> None:
    """List topics and their partition counts."""
    settings = load_settings(**_overrides(bootstrap, None))
    for name, partitions in list_topics(settings.kafka).items():
        typer.echo(f"{name}\t{partitions}")


def _overrides(bootstrap: str | None, partitions: int | None) -> dict[str, dict[str, object]]:
    overrides: dict[str, dict[str, object]] = {}
    if bootstrap:
        overrides["kafka"] = {"bootstrap_servers": bootstrap}
    if partitions:
        overrides["topics"] = {"partitions": partitions}
    return overrides


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
