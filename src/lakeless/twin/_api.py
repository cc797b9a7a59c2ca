"""The twin's HTTP/JSON API (FastAPI).

Routes (all ``GET``, all JSON):

``/health``
    ``{"status": "ok", "pipeline": ..., "database": ..., "entities": n, "open_episodes": n,
    "events": n, "anomalies": n}``
``/entities``
    ``{"count": n, "key": <the key field>, "entities": [state, ...]}``, ordered by key
``/entities/{key}``
    ``{"entity": state, "readings": [...], "anomalies": [...]}`` (query parameters ``readings``
    and ``anomalies`` bound how many recent ones, oldest first); 404 for an unknown entity
``/anomalies/open``
    entities in an open failure episode, the longest-running first
``/cars``, ``/cars/{key}``
    the same as ``/entities``, under the names the car fleet has always used

A state is `lakeless.twin.EntityState` as a dict (the latest reading by field name).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at run
# time, and their types (``Query``) are imported inside `make_app` to keep imports cheap.
from typing import TYPE_CHECKING, Annotated, Any

from lakeless.twin._store import TwinStore

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["make_app"]


def make_app(store: TwinStore) -> "FastAPI":
    """A FastAPI app that answers from ``store`` (which the caller keeps open and closes)."""
    from fastapi import FastAPI, HTTPException, Query

    app = FastAPI(title="lakeless twin", description="Latest state of every entity.")
    key = store.schema.key

    # Plain `def` routes: FastAPI runs them on its thread pool; the store serialises them.
    @app.get("/health")
    def health() -> dict[str, Any]:
        counts = store.counts() if store.ready() else {}
        return {"status": "ok", "pipeline": store.pipeline, "database": repr(store), **counts}

    @app.get("/entities")
    @app.get("/cars")
    def entities() -> dict[str, Any]:
        states = store.all_entities() if store.ready() else []
        return {"count": len(states), "key": key, "entities": [s.to_dict() for s in states]}

    @app.get("/entities/{entity}")
    @app.get("/cars/{entity}")
    def entity(
        entity: str,
        readings: Annotated[int, Query(ge=0, le=10_000)] = 100,
        anomalies: Annotated[int, Query(ge=0, le=10_000)] = 20,
    ) -> dict[str, Any]:
        state = store.entity(entity) if store.ready() else None
        if state is None:
            raise HTTPException(status_code=404, detail=f"unknown {key} {entity!r}")
        return {
            "entity": state.to_dict(),
            "readings": [r.to_dict() for r in store.recent_readings(entity, readings)],
            "anomalies": [a.to_dict() for a in store.recent_anomalies(entity, anomalies)],
        }

    @app.get("/anomalies/open")
    def open_anomalies() -> dict[str, Any]:
        states = store.open_anomalies() if store.ready() else []
        return {"count": len(states), "key": key, "entities": [s.to_dict() for s in states]}

    return app
