"""The twin's HTTP/JSON API (FastAPI), and `ApiServer` to run it on a thread beside the stage.

Routes (all ``GET``, all JSON):

``/health``
    ``{"status": "ok", "database": ..., "cars": n, "open_episodes": n, "events": n, ...}``
``/cars``
    the fleet: ``{"count": n, "cars": [car state, ...]}``, ordered by car id
``/cars/{car_id}``
    ``{"car": state, "readings": [...], "anomalies": [...]}`` (query parameters ``readings`` and
    ``anomalies`` bound how many recent ones, oldest first); 404 for an unknown car
``/anomalies/open``
    cars in an open failure episode, the longest-running first: ``{"count": n, "cars": [...]}``

A car state is `lakeless.twin.CarState` as a dict.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at run
# time, and their types (``Query``) are imported inside `make_app` to keep imports cheap.
import logging
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

from lakeless.errors import LakelessError
from lakeless.twin._store import TwinStore

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ApiServer", "make_app"]

logger = logging.getLogger(__name__)


def make_app(store: TwinStore) -> "FastAPI":
    """A FastAPI app that answers from ``store`` (which the caller keeps open and closes)."""
    from fastapi import FastAPI, HTTPException, Query

    app = FastAPI(title="lakeless twin", description="Latest state of every car.")

    # Plain `def` routes: FastAPI runs them on its thread pool; the store serialises them.
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "database": repr(store), **store.counts()}

    @app.get("/cars")
    def cars() -> dict[str, Any]:
        fleet = store.fleet()
        return {"count": len(fleet), "cars": [car.to_dict() for car in fleet]}

    @app.get("/cars/{car_id}")
    def car(
        car_id: str,
        readings: Annotated[int, Query(ge=0, le=10_000)] = 100,
        anomalies: Annotated[int, Query(ge=0, le=10_000)] = 20,
    ) -> dict[str, Any]:
        state = store.car(car_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"unknown car {car_id!r}")
        return {
            "car": state.to_dict(),
            "readings": [r.to_dict() for r in store.recent_readings(car_id, readings)],
            "anomalies": [a.to_dict() for a in store.recent_anomalies(car_id, anomalies)],
        }

    @app.get("/anomalies/open")
    def open_anomalies() -> dict[str, Any]:
        cars = store.open_anomalies()
        return {"count": len(cars), "cars": [car.to_dict() for car in cars]}

    return app


class ApiServer:
    """Serves `make_app` with uvicorn on a daemon thread; `start`, then `stop`.

    Args:
        store: the store to answer from (give it its own connection, not the writer's).
        host: interface to listen on.
        port: TCP port (0: any free one; see `port` after `start`).

    Example (not run here)::

        with TwinStore.open(url) as store, ApiServer(store, port=8088):
            TwinStage(settings).run()
    """

    def __init__(self, store: TwinStore, host: str = "127.0.0.1", port: int = 8088) -> None:
        import uvicorn

        self.store = store
        self.host = host
        config = uvicorn.Config(
            make_app(store), host=host, port=port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when created with port 0)."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "ApiServer":
        """Start serving; return once it listens.

        Raises:
            LakelessError: it did not start within ``timeout`` seconds (e.g. the port is taken).
        """
        self._thread = threading.Thread(target=self._server.run, name="twin-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LakelessError(f"twin API did not start on {self.host}:{self._port_asked}")
            time.sleep(0.02)
        logger.info("twin API on %s", self.url)
        return self

    @property
    def _port_asked(self) -> int:
        return int(self._server.config.port)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
