"""`TwinReader`: the dashboard's read-only view of one pipeline's twin.

It opens the twin with `lakeless.twin.open_store` in read-only mode, which runs no DDL and
writes nothing, on first use rather than at start-up: the page works (and says so) before the
twin stage has created its database or tables, and a SQLite file that does not exist yet is
reported as "not available" instead of being created empty. One connection serves every request,
one at a time (a `lakeless.twin.TwinStore` must not be used concurrently); SQLite's WAL mode lets
it read while the twin stage writes. A failed read closes the connection; the next one reopens.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from lakeless.errors import LakelessError
from lakeless.schema import PipelineSchema
from lakeless.twin import TwinStore, open_store

__all__ = ["TwinReader"]


class TwinReader:
    """Answers entity queries from a pipeline's twin at ``url``.

    Args:
        url: ``sqlite:///path``, a plain path, or ``postgresql://...``.
        schema: the pipeline's schema.
        pipeline: the pipeline's name (its tables).
        max_entities: most entities `entities` returns (the ones in an open episode first).
    """

    def __init__(
        self, url: str, schema: PipelineSchema, pipeline: str, *, max_entities: int = 2000
    ) -> None:
        self.url = url
        self.schema = schema
        self.pipeline = pipeline
        self.max_entities = max_entities
        self._lock = threading.Lock()
        self._store: TwinStore | None = None

    def describe(self) -> str:
        """The URL without a password."""
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return self.url

    def _open(self) -> TwinStore:
        if self._store is None:
            self._store = open_store(self.url, self.schema, self.pipeline, read_only=True)
        return self._store

    def entities(self) -> dict[str, Any]:
        """``{"available", "key", "count", "open", "entities", "error"}``; never raises."""
        with self._lock:
            try:
                store = self._open()
                if not store.ready():
                    return _unavailable(
                        self.schema, f"no twin of {self.pipeline} in {self.describe()} yet"
                    )
                states = [state.to_dict() for state in store.all_entities()]
            except LakelessError as exc:
                self._reset()
                return _unavailable(self.schema, str(exc))
        states.sort(key=lambda s: (not s["episode_open"], s["key"]))
        return {
            "available": True,
            "key": self.schema.key,
            "count": len(states),
            "open": sum(1 for s in states if s["episode_open"]),
            "entities": states[: self.max_entities],
            "error": None,
        }

    def entity(self, key: str, readings: int, anomalies: int) -> dict[str, Any] | None:
        """One entity with its recent readings and anomalies (``None``: unknown entity).

        Raises:
            LakelessError: the twin cannot be read.
        """
        with self._lock:
            try:
                store = self._open()
                state = store.entity(key)
                if state is None:
                    return None
                return {
                    "entity": state.to_dict(),
                    "readings": [r.to_dict() for r in store.recent_readings(key, readings)],
                    "anomalies": [a.to_dict() for a in store.recent_anomalies(key, anomalies)],
                }
            except LakelessError:
                self._reset()
                raise

    def _reset(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                self._store.close()
            self._store = None

    def close(self) -> None:
        """Close the connection (a later query opens it again)."""
        with self._lock:
            self._reset()


def _unavailable(schema: PipelineSchema, reason: str) -> dict[str, Any]:
    return {
        "available": False,
        "key": schema.key,
        "count": 0,
        "open": 0,
        "entities": [],
        "error": reason,
    }
