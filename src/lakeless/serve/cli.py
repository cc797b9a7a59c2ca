"""``lakeless serve``: the live registry model as an HTTP model server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def _env(name: str) -> str:
    return f"LAKELESS_SERVE_{name}"


def serve(
    model: Annotated[
        str, typer.Option(envvar=_env("MODEL"), help="Registry name of the model to serve.")
    ] = "car-autoencoder",
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(envvar=_env("PORT"), min=1, max=65535, help="TCP port.")
    ] = 8000,
    top_k: Annotated[
        int,
        typer.Option(envvar=_env("TOP_K"), min=0, max=18, help="Features named per anomaly."),
    ] = 3,
    threads: Annotated[
        int,
        typer.Option(envvar=_env("THREADS"), min=0, help="ONNX Runtime intra-op threads."),
    ] = 1,
    poll_interval: Annotated[
        float,
        typer.Option(
            envvar=_env("POLL_INTERVAL"), min=0.01, help="Seconds between registry polls."
        ),
    ] = 0.5,
    count: Annotated[
        int | None,
        typer.Option(envvar=_env("COUNT"), min=1, help="Stop after N scoring requests."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(envvar=_env("TIMEOUT"), help="Stop after S seconds.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            envvar=_env("UNTIL_IDLE"), help="Stop after S seconds without a scoring request."
        ),
    ] = None,
    stats_json: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("STATS_JSON"), dir_okay=False, help="Write the run's counts as JSON here."
        ),
    ] = None,
) -> None:
    """Serve the live registry model over HTTP: POST /score, POST /score/batch, GET /model.

    Follows the registry and swaps to a newly promoted model between requests; a refused model
    never replaces the current one. SIGTERM finishes the requests in flight, then exits 0.
    """
    from lakeless.config import load_settings
    from lakeless.lifecycle import RunLimits
    from lakeless.serve import ServeSettings, run_serve

    settings = load_settings()
    config = ServeSettings(
        model=model,
        host=host,
        port=port,
        top_k=top_k,
        intra_op_threads=threads,
        poll_interval=poll_interval,
    )
    console = Console(stderr=True)
    console.print(
        f"serve: model {model} from {settings.topics.models} on http://{host}:{port} "
        "(POST /score, POST /score/batch, GET /model, GET /health)"
    )
    stats = run_serve(
        settings, config, RunLimits(count=count, timeout=timeout, until_idle=until_idle)
    )
    if stats_json is not None:
        stats_json.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    console.print(
        f"serve: {stats.requests} requests, {stats.events} events, "
        f"{stats.rate:,.0f} events/s; models {dict(stats.by_model)}; stopped by {stats.stopped_by}"
    )
