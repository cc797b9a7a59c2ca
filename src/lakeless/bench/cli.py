"""``lakeless bench``: benchmarks that print a rich table, or one JSON object with ``--json``."""

from __future__ import annotations

from pathlib import Path
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


@bench_app.command("score")
def score(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", envvar=_env("QUICK"), help="150,000 events; the suite takes under a minute."
        ),
    ] = False,
    events: Annotated[
        int | None,
        typer.Option(
            envvar=_env("EVENTS"),
            min=1,
            help="Events in the pre-filled topic (default 150,000 with --quick, else 2,000,000).",
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
    partitions: Annotated[
        int, typer.Option(envvar=_env("PARTITIONS"), min=1, help="Partitions of each topic.")
    ] = 6,
    latency_batch_ms: Annotated[
        int,
        typer.Option(
            envvar=_env("LATENCY_BATCH_MS"),
            min=1,
            help="The scorer's --batch-ms while latency is measured.",
        ),
    ] = 5,
    no_quix: Annotated[
        bool,
        typer.Option(
            "--no-quix",
            envvar=_env("NO_QUIX"),
            help="Skip Quix Streams (and building its virtualenv).",
        ),
    ] = False,
    quix_venv: Annotated[
        Path | None,
        typer.Option(
            envvar="LAKELESS_BENCH_QUIX_VENV",
            help="The Quix Streams virtualenv, built there on first use "
            "(default ~/.cache/lakeless/bench-quix-venv).",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", envvar=_env("JSON"), help="Print one JSON object on stdout."),
    ] = False,
) -> None:
    """Measure scoring: raw consume, lakeless 1p/2p, naive Keras, Quix Streams, model server.

    Every path scores the same pre-filled topic with the same model in one run; each rate is
    reported with its ratio to raw consume, plus the latency (p50/p99) from event time to
    score at 20,000 events/s, and the goals. Logs go to stderr.
    """
    from rich.console import Console

    from lakeless.bench._score import ScoreBenchSettings, run_score_bench
    from lakeless.config import load_settings

    kafka = None
    if bootstrap:
        kafka = load_settings().kafka.model_copy(update={"bootstrap_servers": bootstrap})
    bench = ScoreBenchSettings.for_mode(
        quick,
        events,
        partitions=partitions,
        latency_batch_ms=latency_batch_ms,
        quix=not no_quix,
        quix_venv=quix_venv,
    )
    report = run_score_bench(bench, kafka)
    if as_json:
        typer.echo(report.to_json())
    else:
        Console().print(report.table())


@bench_app.command("train")
def train(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            envvar=_env("QUICK"),
            help="150,000 rows and 1 epoch; under a minute once the tensorflow-io venv exists.",
        ),
    ] = False,
    rows: Annotated[
        int | None,
        typer.Option(
            envvar=_env("ROWS"),
            min=1,
            help="Rows produced and read by every path (default 150,000 with --quick, "
            "else 1,000,000).",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            envvar=_env("EPOCHS"), min=1, help="Training epochs (default 1 with --quick, else 3)."
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
    partitions: Annotated[
        int, typer.Option(envvar=_env("PARTITIONS"), min=1, help="Partitions of the topic.")
    ] = 6,
    no_tfio: Annotated[
        bool,
        typer.Option(
            "--no-tfio",
            envvar=_env("NO_TFIO"),
            help="Skip tensorflow-io (and building its TensorFlow 2.16 virtualenv).",
        ),
    ] = False,
    tfio_venv: Annotated[
        Path | None,
        typer.Option(
            envvar="LAKELESS_BENCH_TFIO_VENV",
            help="The tensorflow-io virtualenv, built there on first use "
            "(default ~/.cache/lakeless/bench-tfio-venv).",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", envvar=_env("JSON"), help="Print one JSON object on stdout."),
    ] = False,
) -> None:
    """Measure reading and training from Kafka against Parquet and tensorflow-io.

    On the same rows in one run: KafkaDataset -> numpy and -> tf.data, Parquet -> numpy (the
    data-lake baseline), tensorflow-io's KafkaGroupIODataset (the talk's method, run in its own
    TensorFlow 2.16 virtualenv), and the same autoencoder trained from Kafka and from Parquet.
    Reports events/s, seconds and the ratios with their goals. Logs go to stderr.
    """
    from rich.console import Console

    from lakeless.bench._train import TrainBenchSettings, run_train_bench
    from lakeless.config import load_settings

    kafka = None
    if bootstrap:
        kafka = load_settings().kafka.model_copy(update={"bootstrap_servers": bootstrap})
    bench = TrainBenchSettings.for_mode(
        quick, rows, epochs, partitions=partitions, tfio=not no_tfio, tfio_venv=tfio_venv
    )
    report = run_train_bench(bench, kafka)
    if as_json:
        typer.echo(report.to_json())
    else:
        Console().print(report.table())
