"""``lakeless dashboard``: serve the live web page of the pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeless._cli import console, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("dashboard")
def dashboard(settings: Settings) -> None:
    """Serve the live dashboard: events/s and lag per stage, anomalies, entities, models, training.

    One page, no internet needed: open http://HOST:PORT/ in a browser. It opens on --pipeline
    and switches to any registered pipeline; the entity table and charts follow that pipeline's
    schema. JSON under /api (/api/pipelines, /api/stats, /api/anomalies, /api/entities,
    /api/entities/{key}, /api/models, POST /api/train; ?pipeline=NAME) and a server-sent event
    stream at /events. The twin is read through a read-only connection. Stops on
    SIGTERM/SIGINT or after --timeout.
    """
    from lakeless.dashboard import dashboard_server
    from lakeless.pipeline import resolve_pipeline

    config = settings.dashboard
    pipeline = resolve_pipeline(settings)
    server = dashboard_server(settings, [pipeline])
    twin = config.twin_url or settings.twin.database_url(settings.data_dir, pipeline.name)
    console.print(
        f"dashboard: http://{config.host}:{config.port}/ (pipeline {pipeline.name}, Kafka "
        f"{settings.kafka.bootstrap_servers}, twin {twin.rsplit('@', 1)[-1]})"
    )
    reason = server.run()
    console.print(f"dashboard: stopped ({reason})")
