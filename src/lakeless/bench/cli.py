"""``lakeless bench``: benchmarks that print a rich table, or one JSON object with ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from lakeless.config import KafkaSettings, MqttSettings

bench_app = typer.Typer(
    help="Benchmarks against peers measured in the same run (rates and ratios to a ceiling).",
    no_args_is_help=True,
)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds every context: throwaway brokers, peers, stages stop


@bench_app.callback()
def _bench() -> None:
    """SIGTERM ends a bench as Ctrl-C does: its throwaway brokers, peers and stages stop too."""
    import signal

    signal.signal(signal.SIGTERM, _interrupt)


def _env(name: str) -> str:
    return f"LAKELESS_BENCH_{name}"


def _quick(help: str) -> Any:
    """The ``--quick`` option (every bench has one; its help says what it keeps)."""
    return typer.Option("--quick", envvar=_env("QUICK"), help=help)


Bootstrap = Annotated[
    str | None,
    typer.Option(
        envvar=_env("BOOTSTRAP"),
        help="Use this Kafka cluster (other LAKELESS_KAFKA__* settings apply) instead of a "
        "throwaway broker.",
    ),
]
MqttUrl = Annotated[
    str | None,
    typer.Option(
        "--mqtt",
        envvar=_env("MQTT"),
        help="Use this MQTT broker (mqtt://host:port) instead of a throwaway Mosquitto.",
    ),
]
Partitions = Annotated[
    int, typer.Option(envvar=_env("PARTITIONS"), min=1, help="Partitions of each topic.")
]
AsJson = Annotated[
    bool, typer.Option("--json", envvar=_env("JSON"), help="Print one JSON object on stdout.")
]


def _kafka(bootstrap: str | None) -> KafkaSettings | None:
    """The Kafka settings with ``bootstrap`` as their servers (``None``: a throwaway broker)."""
    if not bootstrap:
        return None
    from lakeless.config import load_settings

    return load_settings().kafka.model_copy(update={"bootstrap_servers": bootstrap})


def _mqtt(url: str | None) -> MqttSettings | None:
    """The MQTT settings with ``url`` (``None``: a throwaway Mosquitto)."""
    if not url:
        return None
    from lakeless.config import load_settings

    mqtt = load_settings().mqtt.model_copy(update={"url": url})
    _ = mqtt.port  # validates the scheme
    return mqtt


def _emit(report: Any, as_json: bool) -> None:
    """Print ``report``: one JSON object, or its rich table."""
    if as_json:
        typer.echo(report.to_json())
        return
    from rich.console import Console

    Console().print(report.table())


@bench_app.command("ingest")
def ingest(
    quick: Annotated[bool, _quick("Small counts; the suite takes under a minute.")] = False,
    events: Annotated[
        int | None,
        typer.Option(
            envvar=_env("EVENTS"),
            min=1,
            help="Events per path (default 30,000 with --quick, else 200,000).",
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    mqtt_url: MqttUrl = None,
    partitions: Partitions = 6,
    as_json: AsJson = False,
) -> None:
    """Measure ingest: simulate->mqtt, bridge, simulate->kafka, preprocess, and producer-perf.

    Each path's events/s is reported with its ratio to Kafka's own producer-perf tool measured
    in the same run on the same machine. Logs go to stderr.
    """
    from lakeless.bench import IngestBenchSettings, run_ingest_bench

    bench = IngestBenchSettings.for_mode(quick, events, partitions=partitions)
    report = run_ingest_bench(bench, _kafka(bootstrap), _mqtt(mqtt_url))
    _emit(report, as_json)


@bench_app.command("score")
def score(
    quick: Annotated[bool, _quick("150,000 events; the suite takes under a minute.")] = False,
    events: Annotated[
        int | None,
        typer.Option(
            envvar=_env("EVENTS"),
            min=1,
            help="Events in the pre-filled topic (default 150,000 with --quick, else 2,000,000).",
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    partitions: Partitions = 6,
    latency_batch_ms: Annotated[
        int,
        typer.Option(
            envvar=_env("LATENCY_BATCH_MS"),
            min=1,
            help="The scorer's --batch-ms while latency is measured.",
        ),
    ] = 1,
    latency_rate: Annotated[
        int | None,
        typer.Option(
            envvar=_env("LATENCY_RATE"), min=1, help="Offered events/s of the latency runs (20000)."
        ),
    ] = None,
    latency_seconds: Annotated[
        float | None,
        typer.Option(
            envvar=_env("LATENCY_SECONDS"),
            min=0.1,
            help="Measured seconds per latency run (default 4 with --quick, else 10).",
        ),
    ] = None,
    latency_repeats: Annotated[
        int | None,
        typer.Option(
            envvar=_env("LATENCY_REPEATS"),
            min=1,
            help="Interleaved runs of latency, relay-latency and kafka-e2e-latency "
            "(default 1 with --quick, else 3).",
        ),
    ] = None,
    latency_only: Annotated[
        bool,
        typer.Option(
            "--latency-only",
            envvar=_env("LATENCY_ONLY"),
            help="Measure only latency, relay-latency and kafka-e2e-latency.",
        ),
    ] = False,
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
    as_json: AsJson = False,
) -> None:
    """Measure scoring: raw consume, lakeless 1p/2p, naive Keras, Quix Streams, model server.

    Every path scores the same pre-filled topic with the same model in one run; each rate is
    reported with its ratio to raw consume, plus the latency (p50/p99) from event time to
    score at 20,000 events/s beside its floors (a relay with the same loop and clients and no
    model, Kafka's EndToEndLatency), repeated and interleaved, saying when the scorer could
    not keep up (saturated), and the goals. Logs go to stderr.
    """
    from lakeless.bench._score import run_score_bench
    from lakeless.bench._score_settings import ScoreBenchSettings

    optional = {
        "latency_rate": latency_rate,
        "latency_seconds": latency_seconds,
        "latency_repeats": latency_repeats,
    }
    bench = ScoreBenchSettings.for_mode(
        quick,
        events,
        partitions=partitions,
        latency_batch_ms=latency_batch_ms,
        latency_only=latency_only,
        quix=not no_quix,
        quix_venv=quix_venv,
        **{k: v for k, v in optional.items() if v is not None},
    )
    report = run_score_bench(bench, _kafka(bootstrap))
    _emit(report, as_json)


@bench_app.command("train")
def train(
    quick: Annotated[
        bool, _quick("150,000 rows and 1 epoch; under a minute once the tensorflow-io venv exists.")
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
    bootstrap: Bootstrap = None,
    partitions: Annotated[
        int, typer.Option(envvar=_env("PARTITIONS"), min=1, help="Partitions of the topic.")
    ] = 6,
    repeats: Annotated[
        int | None,
        typer.Option(
            envvar=_env("REPEATS"),
            min=1,
            help="Measured runs of each interleaved pair (raw-consume and reader->numpy, the "
            "tf.data paths, the training paths; default 1 with --quick, else 3).",
        ),
    ] = None,
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
    as_json: AsJson = False,
) -> None:
    """Measure reading and training from Kafka against Parquet and tensorflow-io.

    On the same rows in one run: raw consume (the ceiling: no decoding), KafkaDataset -> numpy
    and -> tf.data, Parquet -> numpy (the data-lake baseline), tensorflow-io's
    KafkaGroupIODataset (the talk's method, run in its own TensorFlow 2.16 virtualenv), and the
    same autoencoder trained from Kafka and from Parquet.
    Reports events/s, seconds and the ratios with their goals. Logs go to stderr.
    """
    from lakeless.bench._train import TrainBenchSettings, run_train_bench

    more = {} if repeats is None else {"repeats": repeats}
    bench = TrainBenchSettings.for_mode(
        quick,
        rows,
        epochs,
        partitions=partitions,
        tfio=not no_tfio,
        tfio_venv=tfio_venv,
        **more,
    )
    report = run_train_bench(bench, _kafka(bootstrap))
    _emit(report, as_json)


@bench_app.command("tier")
def tier(
    quick: Annotated[bool, _quick("160 MiB in 16 MiB segments; about two minutes.")] = False,
    mib: Annotated[
        int | None,
        typer.Option(
            envvar=_env("MIB"), min=1, help="MiB per topic (default 160 with --quick, else 384)."
        ),
    ] = None,
    repeats: Annotated[
        int,
        typer.Option(envvar=_env("REPEATS"), min=3, help="Measured reads of each, interleaved."),
    ] = 3,
    partitions: Annotated[
        int, typer.Option(envvar=_env("PARTITIONS"), min=1, help="Partitions of each topic.")
    ] = 3,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            envvar=_env("BOOTSTRAP"),
            help="Use this Kafka cluster (it must tier to remote storage; other "
            "LAKELESS_KAFKA__* settings apply) instead of a throwaway s3proxy and broker.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Measure reading a window wholly from the S3 tier against the same records on local disk.

    Two topics get the same records; one is tiered to S3 (s3proxy and lakeless' plugin) until
    none of the window is left on the broker's disk. Both are read from offset 0 with the
    training reader's settings, interleaved; reports the median rate of each, the spread of
    the repeats, the ratio remote / local (goal >= 0.8) and the CPU seconds per MiB. Logs go
    to stderr.
    """
    from lakeless.bench._tier import TierBenchSettings, run_tier_bench

    bench = TierBenchSettings.for_mode(quick, mib, repeats=repeats, partitions=partitions)
    report = run_tier_bench(bench, _kafka(bootstrap))
    _emit(report, as_json)


@bench_app.command("pipeline")
def pipeline(
    quick: Annotated[
        bool, _quick("Two 8-second steps (1,000 and 2,000 events/s), one run of each measurement.")
    ] = False,
    rates: Annotated[
        str | None,
        typer.Option(
            envvar=_env("RATES"),
            help="Comma-separated ladder of offered events/s (default "
            "5000,10000,15000,20000,25000,30000).",
        ),
    ] = None,
    step_seconds: Annotated[
        float | None,
        typer.Option(envvar=_env("STEP_SECONDS"), min=1, help="Measured seconds per step (60)."),
    ] = None,
    latency_rate: Annotated[
        int | None,
        typer.Option(
            envvar=_env("LATENCY_RATE"), min=1, help="Events/s of the latency runs (10000)."
        ),
    ] = None,
    latency_seconds: Annotated[
        float | None,
        typer.Option(
            envvar=_env("LATENCY_SECONDS"), min=1, help="Measured seconds per latency run (30)."
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            envvar=_env("REPEATS"), min=1, help="Runs of the sustained rate and of the latency (3)."
        ),
    ] = None,
    publishers: Annotated[
        int | None,
        typer.Option(
            envvar=_env("PUBLISHERS"), min=1, help="Simulator processes offering the load (2)."
        ),
    ] = None,
    bridges: Annotated[
        int | None,
        typer.Option(
            envvar=_env("BRIDGES"),
            min=1,
            help="Bridge processes (1; more share an MQTT 5 shared subscription).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            envvar=_env("MODEL"),
            help="zscore or autoencoder (default autoencoder, zscore with --quick).",
        ),
    ] = None,
    no_peers: Annotated[
        bool,
        typer.Option(
            "--no-peers", envvar=_env("NO_PEERS"), help="Skip producer-perf and the MQTT-leg peers."
        ),
    ] = False,
    bootstrap: Bootstrap = None,
    mqtt_url: MqttUrl = None,
    as_json: AsJson = False,
) -> None:
    """Measure the whole pipeline: simulate -> MQTT -> bridge -> preprocess -> score -> twin.

    Steps the offered rate up until a stage (or the load generator) no longer keeps up, names
    the bottleneck, repeats the highest sustained rate, and measures p50/p99 from the device's
    send to the score and anomaly records, beside the MQTT leg alone and Kafka's producer-perf.
    Every stage is its own process, stopped at the end. Logs go to stderr.
    """
    from lakeless.bench._pipeline import PipelineBenchSettings, run_pipeline_bench

    ladder = tuple(int(r) for r in rates.split(",")) if rates else None
    bench = PipelineBenchSettings.for_mode(
        quick,
        rates=ladder,
        step_seconds=step_seconds,
        latency_rate=latency_rate,
        latency_seconds=latency_seconds,
        repeats=repeats,
        publishers=publishers,
        bridges=bridges,
        model=model,
    )
    report = run_pipeline_bench(bench, _kafka(bootstrap), _mqtt(mqtt_url), peers=not no_peers)
    _emit(report, as_json)


@bench_app.command("detect")
def detect(
    quick: Annotated[
        bool, _quick("20 cars, 10-minute windows, one seed, 2 epochs; a few minutes.")
    ] = False,
    seeds: Annotated[
        str | None,
        typer.Option(
            envvar=_env("SEEDS"), help="Comma-separated simulator seeds (default 1,2,3; 1 quick)."
        ),
    ] = None,
    cars: Annotated[
        int | None,
        typer.Option(envvar=_env("CARS"), min=2, help="Cars per fleet (default 60; 20 quick)."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(envvar=_env("EPOCHS"), min=1, help="Autoencoder epochs (default 8; 2 quick)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            envvar=_env("MODELS"),
            help="Comma-separated models to run (default all: autoencoder, autoencoder-max, "
            "autoencoder-top3, autoencoder-wide(-max), autoencoder-context(-max), "
            "autoencoder(-max)-smoothed, zscore, per-car(-max), iforest, ecod, copod, hst).",
        ),
    ] = None,
    smoothing_seconds: Annotated[
        float | None,
        typer.Option(
            envvar=_env("SMOOTHING_SECONDS"),
            min=0.001,
            help="Time constant of the -smoothed models' per-car average of the score "
            "(default 30).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Measure detection: the default model and its peers on two simulators, several seeds.

    In memory, no Kafka: each model is trained on the healthy rows of a window of the car-fleet
    simulator and of a second simulator of another physical model (lakeless.testing.fleet2),
    and evaluated on a later window of the same cars (and the second simulator's with the first
    one's models). Reports per model and failure mode the episode recall, false alarms per
    10,000 healthy events and median time to detect, mean and spread over the seeds. pyod's and
    River's detectors run when installed (pip install 'lakeless[detect-peers]'). Logs go to stderr.
    """
    from lakeless.bench._detect import DetectBenchSettings, run_detect_bench

    fields: dict[str, object] = {}
    try:
        if seeds:
            fields["seeds"] = tuple(int(s) for s in seeds.split(","))
        if models:
            fields["models"] = tuple(m.strip() for m in models.split(",") if m.strip())
        if cars is not None:
            fields["cars"] = cars
        if epochs is not None:
            fields["epochs"] = epochs
        if smoothing_seconds is not None:
            fields["smoothing_seconds"] = smoothing_seconds
        bench = DetectBenchSettings.for_mode(quick, **fields)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    report = run_detect_bench(bench)
    _emit(report, as_json)
