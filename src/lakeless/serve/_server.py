"""Running the model server: uvicorn with the lakeless stop rules.

`run_serve` serves `lakeless.serve.create_app` with uvicorn until a `lakeless.lifecycle.RunLimits`
limit is reached (``count``: scoring requests answered, ``timeout``, ``until_idle``: seconds
without a scoring request) or SIGTERM/SIGINT arrives. Every way ends the same: uvicorn's graceful
shutdown (``should_exit``: stop accepting, finish the requests in flight, close keep-alive
connections, stop the registry watcher), then the function returns the `ServeStats`; a signal
therefore ends the process with status 0, not by re-raising the signal as plain uvicorn does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from lakeless.config import Settings
from lakeless.errors import LakelessError
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.serve._app import ServeSettings, ServeStats, create_app
from lakeless.serve._models import LiveModel

__all__ = ["ServeError", "run_serve"]

logger = logging.getLogger(__name__)


class ServeError(LakelessError):
    """The model server could not start (address in use, registry unreadable, ...)."""


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by a `Stopper` (limits and signals) instead of its own."""

    def __init__(self, config: uvicorn.Config, stopper: Stopper) -> None:
        super().__init__(config)
        self.stopper = stopper

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with stop_on_signals(self.stopper):
            yield

    async def on_tick(self, counter: int) -> bool:
        if not self.should_exit and self.stopper.done:  # checked every 0.1 s by uvicorn
            logger.info("serve stopping: %s", self.stopper.reason)
            self.should_exit = True
        return await super().on_tick(counter)


def run_serve(
    settings: Settings | None,
    config: ServeSettings | None = None,
    limits: RunLimits | None = None,
    *,
    live: LiveModel | None = None,
) -> ServeStats:
    """Serve the live model of ``config.model`` over HTTP until a limit or a signal.

    Args:
        settings: Kafka and topics (``None``: no registry; serve what ``live`` holds).
        config: the server's settings.
        limits: when to stop by itself.
        live: the model holder (see `lakeless.serve.create_app`).

    Returns:
        What was served; ``stopped_by`` says why it stopped.

    Raises:
        ServeError: the server could not start (e.g. the port is taken).
        lakeless.registry.RegistryError: the registry topic is missing or unreadable.
    """
    config = config or ServeSettings()
    stopper = Stopper(limits)
    app = create_app(settings, config, live=live, stopper=stopper)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,  # the library never configures logging; the CLI did
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = _Server(uv_config, stopper)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise ServeError(f"cannot listen on {config.host}:{config.port} (see the log)") from exc
    error = getattr(app.state, "startup_error", None)
    if error is not None:
        if isinstance(error, LakelessError):
            raise error
        raise ServeError(f"the model server did not start: {error}") from error
    if not server.started:
        raise ServeError("the model server did not start (see the log)")
    stats: ServeStats = app.state.stats
    stats.stopped_by = stopper.reason or "stopped"
    return stats
