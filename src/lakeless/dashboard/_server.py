"""Serving the dashboard with `lakeless._http.HttpServer`, in the foreground or on a thread.

`dashboard_server` builds the app for the settings' pipeline (and every registered one) and an
`HttpServer` for it; `run_dashboard` serves it until ``settings.dashboard.timeout`` or
SIGTERM/SIGINT. Either way the shutdown is graceful: open event streams end, a running training
child is stopped, the collector thread and the twin connections are closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from lakeless._http import HttpServer
from lakeless.config import Settings
from lakeless.dashboard._app import create_app
from lakeless.lifecycle import RunLimits, Stopper
from lakeless.pipeline import Pipeline

__all__ = ["dashboard_server", "run_dashboard"]

logger = logging.getLogger(__name__)


def dashboard_server(settings: Settings, pipelines: Sequence[Pipeline] | None = None) -> HttpServer:
    """An `HttpServer` of the dashboard on ``settings.dashboard.host:port`` (not started).

    Args:
        settings: connections, ``settings.dashboard``, the pipeline the page opens with.
        pipelines: the pipelines to show, the opening one first (default: the settings'
            pipeline as registered on the cluster, see `lakeless.pipeline.resolve_pipeline`).

    Raises:
        lakeless.pipeline.PipelineError: the settings' pipeline is not registered.
        lakeless.errors.ConfigError: it would listen beyond loopback without a token.
    """
    if pipelines is None:
        from lakeless.pipeline import resolve_pipeline

        pipelines = [resolve_pipeline(settings)]
    config = settings.dashboard
    closing = threading.Event()
    return HttpServer(
        create_app(settings, pipelines, closing=closing),
        config.host,
        config.port,
        name="dashboard",
        access=settings.http,
        stopper=Stopper(RunLimits(timeout=config.timeout)),
        on_exit=closing.set,  # event streams end, so the graceful shutdown does not wait
        graceful=5.0,
    )


def run_dashboard(settings: Settings, pipelines: Sequence[Pipeline] | None = None) -> str:
    """Serve the dashboard until ``settings.dashboard.timeout`` or SIGTERM/SIGINT.

    Returns:
        Why it stopped.

    Raises:
        lakeless.errors.LakelessError: it could not listen, or see `dashboard_server`.
    """
    reason = dashboard_server(settings, pipelines).run()
    logger.info("dashboard stopped: %s", reason)
    return reason
