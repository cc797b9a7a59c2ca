"""``lakeless serve``: the live registry model as an HTTP model server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("serve")
def serve(settings: Settings) -> None:
    """Serve the live registry model over HTTP: POST /score, POST /score/batch, GET /model.

    Events are validated as preprocess validates them (same reason codes). Follows the registry
    and swaps to a newly promoted model between requests; a refused model never replaces the
    current one. SIGTERM finishes the requests in flight, then exits 0.
    """
    from lakeless.pipeline import resolve_pipeline
    from lakeless.serve import ServeStats, run_serve

    config = settings.serve
    pipeline = resolve_pipeline(settings)
    model = config.model or pipeline.model
    console.print(
        f"serve: model {model} (pipeline {pipeline.name}) on http://{config.host}:{config.port} "
        "(POST /score, POST /score/batch, GET /model, GET /health)"
    )
    stats = ServeStats()
    with report(config, lambda: stats):
        stats = run_serve(settings, pipeline)
    console.print(
        f"serve: {stats.requests} requests, {stats.events} events, "
        f"{stats.rate:,.0f} events/s; models {dict(stats.by_model)}; stopped by {stats.stopped_by}"
    )
