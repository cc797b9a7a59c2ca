"""``lakeless stack ...`` and ``lakeless topics ...`` commands."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from lakeless.config import load_settings
from lakeless.kafka import create_topics, list_topics, pipeline_topics, wait_for_broker
from lakeless.stack import Stack

stack_app = typer.Typer(help="Start, stop and inspect the embedded Kafka broker and Mosquitto.")
topics_app = typer.Typer(help="Create and list the pipeline's topics.")
console = Console()

DataDir = Annotated[
    Path, typer.Option(envvar="LAKELESS_DATA_DIR", help="Folder for broker data, logs and pids.")
]
KafkaPort = Annotated[
    int | None,
    typer.Option(
        envvar="LAKELESS_STACK_KAFKA_PORT",
        help="Kafka client port of node 1; node i listens on port + i - 1 [9092].",
    ),
]
ControllerPort = Annotated[
    int | None,
    typer.Option(
        envvar="LAKELESS_STACK_CONTROLLER_PORT",
        help="KRaft controller port of node 1, the others follow [kafka port + brokers].",
    ),
]
MqttPort = Annotated[
    int | None, typer.Option(envvar="LAKELESS_STACK_MQTT_PORT", help="MQTT port [1883].")
]
Tier = Annotated[
    Literal["local", "s3"] | None,
    typer.Option(
        envvar="LAKELESS_STACK_TIER",
        help="Where old segments go: local (a folder, the default) or s3 (s3proxy, data dir).",
    ),
]
S3Port = Annotated[
    int | None, typer.Option(envvar="LAKELESS_STACK_S3_PORT", help="S3 port with --tier s3 [9000].")
]
Analytics = Annotated[
    bool | None,
    typer.Option(
        "--analytics/--no-analytics",
        envvar="LAKELESS_STACK_ANALYTICS",
        help="Also a second Kafka cluster (one node) that MirrorMaker 2 replicates every "
        "pipeline's topics and the model and schema registries into, names kept; train there "
        "with LAKELESS_KAFKA__BOOTSTRAP_SERVERS at it and LAKELESS_REGISTRY__BOOTSTRAP_SERVERS "
        "at the primary [off].",
    ),
]
AnalyticsPort = Annotated[
    int | None,
    typer.Option(
        envvar="LAKELESS_STACK_ANALYTICS_PORT",
        help="Client port of the analytics cluster [kafka port + 100].",
    ),
]
AnalyticsControllerPort = Annotated[
    int | None,
    typer.Option(
        envvar="LAKELESS_STACK_ANALYTICS_CONTROLLER_PORT",
        help="KRaft controller port of the analytics cluster [analytics port + 1].",
    ),
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
    brokers: Annotated[
        int | None,
        typer.Option(
            envvar="LAKELESS_STACK_BROKERS",
            min=1,
            max=9,
            help="Kafka nodes (broker + controller each); 3 gives replication 3, min ISR 2 [1].",
        ),
    ] = None,
    secure: Annotated[
        bool | None,
        typer.Option(
            "--secure/--no-secure",
            envvar="LAKELESS_STACK_SECURE",
            help="SASL_SSL (SCRAM-SHA-512) with ACLs per stage, MQTT over TLS with passwords; "
            "writes <data-dir>/client.env and client-<stage>.env [off].",
        ),
    ] = None,
    tier: Tier = None,
    s3_port: S3Port = None,
    analytics: Analytics = None,
    analytics_port: AnalyticsPort = None,
    analytics_controller_port: AnalyticsControllerPort = None,
) -> None:
    """Start Kafka (KRaft, tiered storage) and Mosquitto; return once all answer.

    Idempotent: whatever is not running is started (a node that died comes back with its
    data), whatever runs is left alone. Broker count and security are fixed when the data dir
    is first formatted.
    """
    stack = Stack.from_data_dir(
        data_dir,
        load_settings().topics,
        kafka_port=kafka_port,
        controller_port=controller_port,
        mqtt_port=mqtt_port,
        tiered_storage=tiered_storage,
        brokers=brokers,
        secure=secure,
        tier=tier,
        s3_port=s3_port,
        analytics=analytics,
        analytics_port=analytics_port,
        analytics_controller_port=analytics_controller_port,
    )
    nodes = len(stack.kafka.nodes)
    with console.status(f"starting Kafka ({nodes} node{'s' * (nodes > 1)}) and Mosquitto..."):
        stack.up()
    s3 = f", S3 tier on [bold]{stack.s3.endpoint}[/]" if stack.s3 else ""
    console.print(
        f"Kafka on [bold]{stack.kafka.bootstrap}[/] ({stack.security_protocol}), MQTT on "
        f"[bold]{stack.mqtt.url}[/]{s3}; data in {data_dir}. "
        f"Stop with `lakeless stack down --data-dir {data_dir}`."
    )
    if stack.settings.analytics:
        env = " ".join(f"{key}={value}" for key, value in stack.analytics_env().items())
        console.print(
            f"Analytics cluster on [bold]{stack.analytics.bootstrap}[/], mirrored by MirrorMaker "
            f"2 ({len(stack.mirror.topics())} topics, names kept; log {stack.mirror.log_file}). "
            f"Train on it with: {env}"
        )
    if stack.security:
        console.print(
            f"Client settings (admin): {stack.security.env_file()}; per stage: "
            f"{stack.security.env_file('score').with_name('client-<stage>.env')}"
        )


@stack_app.command()
def down(data_dir: DataDir = Path(".lakeless")) -> None:
    """Stop every Kafka node, Mosquitto and the analytics cluster cleanly (SIGTERM, then wait)."""
    stopped = Stack.from_data_dir(data_dir).down()
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@stack_app.command()
def status(
    data_dir: DataDir = Path(".lakeless"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show whether Kafka, Mosquitto (and the analytics cluster) run, where, which version."""
    report = Stack.from_data_dir(data_dir).status()
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table("service", "running", "address", "pid", "details")
    kafka, mqtt = report["kafka"], report["mqtt"]
    details = (
        f"version {kafka['version']}, tiered storage {_yes(kafka['tiered_storage'])}"
        + (f" ({kafka['tier']})" if kafka["tiered_storage"] else "")
        + f", {kafka['security_protocol']}"
    )
    if len(kafka["brokers"]) == 1:
        table.add_row(
            "kafka", _yes(kafka["running"]), kafka["bootstrap"], str(kafka["pid"] or "-"), details
        )
    else:
        for node in kafka["brokers"]:
            table.add_row(
                f"kafka node {node['id']}",
                _yes(node["running"]),
                f"127.0.0.1:{node['port']}",
                str(node["pid"] or "-"),
                details,
            )
    table.add_row("mqtt", _yes(mqtt["running"]), mqtt["url"], str(mqtt["pid"] or "-"), "")
    if analytics := report.get("analytics"):
        table.add_row(
            "analytics", _yes(analytics["running"]), analytics["bootstrap"],
            str(analytics["pid"] or "-"), f"cluster {analytics['cluster_id']}",
        )  # fmt: skip
    if mirror := report.get("mirror"):
        behind = sum(
            max(0, (ends["primary"] or 0) - (ends["analytics"] or 0))
            for ends in mirror["topics"].values()
        )
        table.add_row(
            "mirror", _yes(mirror["running"]), f"{mirror['source']} -> {mirror['target']}",
            str(mirror["pid"] or "-"), f"{len(mirror['topics'])} topics, ~{behind} records behind",
        )  # fmt: skip
    if s3 := report.get("s3"):
        failures = f", {s3['copy_failures']} failed copies logged" if s3["copy_failures"] else ""
        table.add_row(
            "s3", _yes(s3["running"]), s3["endpoint"], str(s3["pid"] or "-"),
            f"bucket {s3['bucket']}{failures}",
        )  # fmt: skip
    console.print(table)


@stack_app.command()
def logs(
    data_dir: DataDir = Path(".lakeless"),
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option(help="Lines to show from each log.")] = 50,
) -> None:
    """Print the brokers' and Mosquitto's logs."""
    stack = Stack.from_data_dir(data_dir)
    files = [node.home / "logs" / "server.log" for node in stack.kafka.nodes]
    files.append(stack.mqtt.home / "mosquitto.log")
    if stack.s3:
        files.append(stack.s3.daemon.log_file)
    files += [node.home / "logs" / "server.log" for node in stack.analytics.nodes]
    files.append(stack.mirror.log_file)
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
    """Create the pipeline's topics (existing ones are left as they are).

    Replication follows the cluster (3 replicas, min ISR 2 on 3+ brokers) unless
    LAKELESS_TOPICS__REPLICATION_FACTOR / LAKELESS_TOPICS__MIN_INSYNC_REPLICAS say otherwise.
    """
    settings = load_settings(**_overrides(bootstrap, partitions))
    brokers = wait_for_broker(settings.kafka, timeout=10)
    specs = pipeline_topics(settings.topics, brokers=brokers)
    created = create_topics(settings.kafka, specs)
    table = Table("topic", "partitions", "replicas", "config", "status")
    for spec in specs:
        config = ", ".join(f"{k}={v}" for k, v in spec.config.items())
        table.add_row(
            spec.name,
            str(spec.partitions),
            str(spec.replication_factor),
            config,
            "created" if created[spec.name] else "exists",
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
