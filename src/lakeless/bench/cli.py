"""``lakeless bench``: benchmarks that print a rich table, or one JSON object with ``--json``."""

from __future__ import annotations

from typing import Annotated

import typer

bench_app = typer.Typer(
    help="Benchmarks against peers measured in the same run (rates and ratios to a ceiling).",
    no_args_is_help=True,
)


def _env(name: str) -> str:
    return f"LAKELESS_BENCH_{name}"


@bench_app.command("ingest")
def ingest(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", envvar=_env("QUICK"), help="Small counts; the suite takes under a minute."
        ),
    ] = False,
    events: Annotated[
        int | None,
        typer.Option(
            envvar=_env("EVENTS"),
            min=1,
            help="Events per path (default 30,000 with --quick, else 200,000).",
        ),
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            envvar=_env("BOOTSTRAP"),
            help="Use this Kafka cluster (other LAKELESS_KAFKA__* settings apply) instead of a "
            "throwaway broker.",
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            envvar=_env("MQTT"),
            help="Use this MQTT broker (mqtt://host:port) instead of a throwaway Mosquitto.",
        ),
    ] = None,
    partitions: Annotated[
        int, typer.Option(envvar=_env("PARTITIONS"), min=1, help="Partitions of each topic.")
    ] = 6,
    as_json: Annotated[
        bool,
        typer.Option("--json", envvar=_env("JSON"), help="Print one JSON object on stdout."),
    ] = False,
) -> None:
    """Measure ingest: simulate->mqtt, bridge, simulate->kafka, preprocess, and producer-perf.

    Each path's events/s is reported with its ratio to Kafka's own producer-perf tool measured
    in the same run on the same machine. Logs go to stderr.
    """
    from rich.console import Console

    from lakeless.bench import IngestBenchSettings, run_ingest_bench
    from lakeless.config import load_settings

    settings = load_settings()
    kafka = None
    if bootstrap:
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
    mqtt = None
    if mqtt_url:
        mqtt = settings.mqtt.model_copy(update={"url": mqtt_url})
        _ = mqtt.port  # validates the scheme
    bench = IngestBenchSettings.for_mode(quick, events, partitions=partitions)
    report = run_ingest_bench(bench, kafka, mqtt)
    if as_json:
        typer.echo(report.to_json())
    else:
        Console().print(report.table())
