"""``lakeless twin``: keep the latest state of every car, and serve it over HTTP/JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console


def _env(name: str) -> str:
    return f"LAKELESS_TWIN__{name}"


def twin(
    db: Annotated[
        str | None,
        typer.Option(
            envvar=_env("URL"),
            help="Database: sqlite:///path (default: sqlite:///<data_dir>/twin.sqlite) or "
            "postgresql://user:password@host:port/db.",
        ),
    ] = None,
    group_id: Annotated[
        str, typer.Option(envvar=_env("GROUP_ID"), help="Kafka consumer group.")
    ] = "lakeless-twin",
    batch_size: Annotated[
        int,
        typer.Option(
            envvar=_env("BATCH_SIZE"),
            min=1,
            max=100_000,
            help="Most records per batch (one database transaction, one Kafka commit).",
        ),
    ] = 5000,
    keep_readings: Annotated[
        int, typer.Option(envvar=_env("KEEP_READINGS"), min=1, help="Readings kept per car.")
    ] = 600,
    keep_anomalies: Annotated[
        int,
        typer.Option(envvar=_env("KEEP_ANOMALIES"), min=1, help="Anomaly records kept per car."),
    ] = 1000,
    episode_gap_ms: Annotated[
        int,
        typer.Option(
            envvar=_env("EPISODE_GAP_MS"),
            min=0,
            help="Event-time gap between two anomalies that ends a failure episode (and "
            "after the last one, that closes it).",
        ),
    ] = 60_000,
    serve_port: Annotated[
        int,
        typer.Option(
            envvar=_env("SERVE_PORT"),
            min=0,
            max=65535,
            help="Serve the HTTP/JSON API on this port while running (0: no API).",
        ),
    ] = 0,
    serve_host: Annotated[
        str, typer.Option(envvar=_env("SERVE_HOST"), help="Interface the API listens on.")
    ] = "127.0.0.1",
    serve_only: Annotated[
        bool,
        typer.Option(
            envvar=_env("SERVE_ONLY"),
            help="Only serve the API (needs --serve-port); consume nothing.",
        ),
    ] = False,
    count: Annotated[
        int | None,
        typer.Option(envvar=_env("COUNT"), min=1, help="Stop after reading N records."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(envvar=_env("TIMEOUT"), help="Stop after S seconds.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(envvar=_env("UNTIL_IDLE"), help="Stop after S seconds without records."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's counts as JSON at exit.")
    ] = False,
) -> None:
    """Keep the latest state per car from sensor-clean and anomalies (SQLite or PostgreSQL).

    Each batch is one database transaction, committed before its Kafka offsets; writes are
    keyed by (car_id, seq) and only move a car forward, so replays change nothing. The API:
    GET /cars, /cars/{car_id}, /anomalies/open, /health.
    """
    from lakeless.config import load_settings
    from lakeless.errors import ConfigError
    from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
    from lakeless.twin import ApiServer, TwinSettings, TwinStage

    if serve_only and not serve_port:
        raise ConfigError("--serve-only needs --serve-port")
    settings = load_settings()
    config = TwinSettings(
        url=db or None,
        group_id=group_id,
        batch_size=batch_size,
        keep_readings=keep_readings,
        keep_anomalies=keep_anomalies,
        episode_gap_ms=episode_gap_ms,
    )
    console = Console(stderr=True)
    limits = RunLimits(count=count, timeout=timeout, until_idle=until_idle)
    api = None
    if serve_port:
        # The API reads through its own connection, so it never waits for a batch to commit.
        api = ApiServer(config.open_store(settings), serve_host, serve_port).start()
        console.print(f"twin: API on {api.url} (/cars, /cars/{{car_id}}, /anomalies/open)")
    try:
        if serve_only:
            stopper = Stopper(RunLimits(timeout=timeout))
            with stop_on_signals(stopper):
                while not stopper.wait(0.5):
                    pass
            return
        topics = settings.topics
        console.print(
            f"twin: {topics.clean} + {topics.anomalies} -> {config.database_url(settings)} "
            f"(group {group_id})"
        )
        stage = TwinStage(settings, config)
        stats = stage.run(limits)
    finally:
        if api is not None:
            api.stop()
            api.store.close()
    report: dict[str, Any] = stats.to_dict()
    if as_json:
        typer.echo(json.dumps(report))
    console.print(
        f"twin: readings {stats.readings} ({stats.new_readings} new), anomalies "
        f"{stats.anomalies} ({stats.new_anomalies} new), invalid {stats.invalid}; "
        f"{stats.rate:,.0f} records/s; stopped by {stats.stopped_by}"
    )
