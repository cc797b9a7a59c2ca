"""Running the dashboard: uvicorn with the lakeless stop rules, in the foreground or on a thread.

`run_dashboard` serves `lakeless.dashboard.create_app` until ``timeout`` or SIGTERM/SIGINT, then
shuts down gracefully: open event streams end, a running training child is stopped, the
collector thread and the twin connection are closed. `DashboardServer` does the same on a
daemon thread (the demo and the tests run it beside the pipeline).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import uvicorn

from lakeless.config import Settings
from lakeless.dashboard._app import DashboardSettings, create_app
from lakeless.dashboard._state import DashboardState
from lakeless.errors import LakelessError
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals

__all__ = ["DashboardError", "DashboardServer", "run_dashboard"]

logger = logging.getLogger(__name__)


class DashboardError(LakelessError):
    """The dashboard could not start (address in use, ...)."""


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by a `Stopper` (limits and signals) instead of its own."""

    def __init__(
        self, config: uvicorn.Config, stopper: Stopper, closing: threading.Event, signals: bool
    ) -> None:
        super().__init__(config)
        self.stopper = stopper
        self.closing = closing
        self.signals = signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.signals:
            yield
            return
        with stop_on_signals(self.stopper):
            yield

    async def on_tick(self, counter: int) -> bool:
        if not self.should_exit and self.stopper.done:  # checked every 0.1 s by uvicorn
            logger.info("dashboard stopping: %s", self.stopper.reason)
            self.should_exit = True
        if self.should_exit:
            self.closing.set()  # event streams end, so the graceful shutdown does not wait
        return await super().on_tick(counter)


def _server(
    settings: Settings,
    config: DashboardSettings,
    stopper: Stopper,
    state: DashboardState | None,
    *,
    signals: bool,
) -> _Server:
    closing = threading.Event()
    app = create_app(settings, config, state=state, closing=closing)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,  # the library never configures logging; the CLI did
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return _Server(uv_config, stopper, closing, signals)


def run_dashboard(
    settings: Settings,
    config: DashboardSettings | None = None,
    limits: RunLimits | None = None,
    *,
    state: DashboardState | None = None,
) -> str:
    """Serve the dashboard until ``limits.timeout`` or SIGTERM/SIGINT.

    Args:
        settings: Kafka connection, topics, ``data_dir``.
        config: the dashboard's settings.
        limits: only ``timeout`` applies (a dashboard has no items to count).
        state: see `create_app`.

    Returns:
        Why it stopped.

    Raises:
        DashboardError: it could not listen.
    """
    config = config or DashboardSettings()
    stopper = Stopper(RunLimits(timeout=(limits or RunLimits()).timeout))
    server = _server(settings, config, stopper, state, signals=True)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise DashboardError(f"cannot listen on {config.host}:{config.port} (see the log)") from exc
    if not server.started:
        raise DashboardError("the dashboard did not start (see the log)")
    return stopper.reason or "stopped"


class DashboardServer:
    """The dashboard on a daemon thread: `start` (returns once it listens), then `stop`.

    Args:
        settings: Kafka connection, topics, ``data_dir``.
        config: the dashboard's settings (``port=0``: any free port; see `port`).
        state: see `create_app`.
    """

    def __init__(
        self,
        settings: Settings,
        config: DashboardSettings | None = None,
        *,
        state: DashboardState | None = None,
    ) -> None:
        self.config = config or DashboardSettings()
        self.stopper = Stopper()
        self._server = _server(settings, self.config, self.stopper, state, signals=False)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when configured with port 0)."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.config.port

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.config.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> DashboardServer:
        """Start serving; return once it listens.

        Raises:
            DashboardError: it did not start within ``timeout`` seconds.
        """
        self._thread = threading.Thread(target=self._server.run, name="dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DashboardError(
                    f"the dashboard did not start on {self.config.host}:{self.config.port}"
                )
            time.sleep(0.02)
        logger.info("dashboard on %s", self.url)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop serving and wait for the thread."""
        self.stopper.request_stop("stopped")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
