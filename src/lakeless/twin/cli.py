"""``lakeless twin``: keep the latest state of every entity, and serve it over HTTP/JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("twin")
def twin(
    settings: Settings,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's counts as JSON at exit.")
    ] = False,
) -> None:
    """Keep the latest state per entity from the clean and anomaly topics (SQLite or PostgreSQL).

    Each batch is one database transaction, committed before its Kafka offsets; writes are
    keyed by entity and sequence (or time) and only move an entity forward, so replays change
    nothing. The API: GET /entities, /entities/{key}, /anomalies/open, /health.
    """
    from lakeless._http import HttpServer
    from lakeless.errors import ConfigError
    from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
    from lakeless.pipeline import resolve_pipeline
    from lakeless.twin import TwinStage, make_app, open_twin

    config = settings.twin
    if config.serve_only and not config.serve_port:
        raise ConfigError("--serve-only needs --serve-port")
    pipeline = resolve_pipeline(settings)
    api = None
    if config.serve_port:
        # The API reads through its own connection, so it never waits for a batch to commit.
        api_store = open_twin(settings, pipeline)
        api = HttpServer(
            make_app(api_store),
            config.serve_host,
            config.serve_port,
            name="twin API",
            access=settings.http,
        ).start()
        console.print(f"twin: API on {api.url} (/entities, /entities/{{key}}, /anomalies/open)")
    try:
        if config.serve_only:
            stopper = Stopper(RunLimits(timeout=config.timeout))
            with stop_on_signals(stopper):
                while not stopper.wait(0.5):
                    pass
            return
        topics = pipeline.topics
        console.print(
            f"twin: {topics.clean} + {topics.anomalies} -> "
            f"{config.database_url(settings.data_dir, pipeline.name)} (pipeline {pipeline.name})"
        )
        stage = TwinStage(settings, pipeline)
        with report(config, lambda: stage.stats):
            stats = stage.run()
    finally:
        if api is not None:
            api.stop()
            api_store.close()
    if as_json:
        typer.echo(json.dumps(stats.to_dict()))
    console.print(
        f"twin: readings {stats.readings} ({stats.new_readings} new), anomalies "
        f"{stats.anomalies} ({stats.new_anomalies} new), invalid {stats.invalid}; "
        f"{stats.rate:,.0f} records/s; stopped by {stats.stopped_by}"
    )
