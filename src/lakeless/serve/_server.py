"""Running the model server until a limit or a signal (`lakeless._http.HttpServer`).

`run_serve` serves `lakeless.serve.create_app` until a `lakeless.lifecycle.RunLimits` limit is
reached (``count``: scoring requests answered, ``timeout``, ``until_idle``: seconds without a
scoring request) or SIGTERM/SIGINT arrives; then uvicorn shuts down gracefully (finishing the
requests in flight, stopping the registry watcher) and it returns the `ServeStats`.
"""

from __future__ import annotations

import logging

from lakeless._http import HttpServer
from lakeless.config import Settings
from lakeless.errors import LakelessError
from lakeless.lifecycle import RunLimits, Stopper
from lakeless.pipeline import Pipeline
from lakeless.serve._app import ServeStats, create_app
from lakeless.serve._models import LiveModel
from lakeless.serve._settings import ServeSettings

__all__ = ["ServeError", "run_serve"]

logger = logging.getLogger(__name__)


class ServeError(LakelessError):
    """The model server could not start (address in use, registry unreadable, ...)."""


def run_serve(
    settings: Settings | None,
    pipeline: Pipeline | None = None,
    limits: RunLimits | None = None,
    *,
    live: LiveModel | None = None,
    config: ServeSettings | None = None,
) -> ServeStats:
    """Serve the live model of the pipeline's model over HTTP until a limit or a signal.

    Args:
        settings: Kafka, topics and ``settings.serve`` (``None``: no registry; serve what
            ``live`` holds, with default settings).
        pipeline: the pipeline (default: the built-in car fleet).
        limits: when to stop by itself (default: the settings').
        live: the model holder (see `lakeless.serve.create_app`).
        config: the server's settings (default: ``settings.serve``), e.g. a port for a server
            without a registry.

    Returns:
        What was served; ``stopped_by`` says why it stopped.

    Raises:
        ServeError: the server could not start (e.g. the port is taken).
        lakeless.registry.RegistryError: the registry topic is missing or unreadable.
    """
    if config is None:
        config = settings.serve if settings is not None else ServeSettings()
    stopper = Stopper(limits or config.limits())
    app = create_app(settings, pipeline, config, live=live, stopper=stopper)
    server = HttpServer(
        app,
        config.host,
        config.port,
        name="model server",
        access=settings.http if settings is not None else None,
        stopper=stopper,
    )
    try:
        reason = server.run()
    except LakelessError as exc:
        error = getattr(app.state, "startup_error", None)
        if isinstance(error, LakelessError):
            raise error from None
        if error is not None:
            raise ServeError(f"the model server did not start: {error}") from error
        raise ServeError(str(exc)) from exc
    logger.info("serve stopping: %s", reason)
    stats: ServeStats = app.state.stats
    stats.stopped_by = reason
    return stats
