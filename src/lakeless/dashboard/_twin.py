"""`TwinReader`: the dashboard's read-only view of the twin database.

The connection is opened on first use, not at start-up, so the page works (and says so) before
the twin stage has created its database; a SQLite file that does not exist yet is reported as
"not available" instead of being created empty. One connection serves every request, one at a
time (a `lakeless.twin.TwinStore` must not be used concurrently); SQLite's WAL mode lets it read
while the twin stage writes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lakeless.errors import LakelessError
from lakeless.twin import TwinStore

__all__ = ["TwinReader"]


class TwinReader:
    """Answers fleet and car queries from the twin at ``url``.

    Args:
        url: ``sqlite:///path``, a plain path, or ``postgresql://...``.
        max_cars: most cars `fleet` returns (the ones in an open episode first).
    """

    def __init__(self, url: str, *, max_cars: int = 2000) -> None:
        self.url = url
        self.max_cars = max_cars
        self._lock = threading.Lock()
        self._store: TwinStore | None = None

    def describe(self) -> str:
        """The URL without a password."""
        if "@" in self.url and "://" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return self.url

    def _sqlite_path(self) -> Path | None:
        if self.url.startswith(("postgresql://", "postgres://")):
            return None
        path = self.url.removeprefix("sqlite:///")
        return None if path == ":memory:" else Path(path)

    def _open(self) -> TwinStore | None:
        if self._store is None:
            path = self._sqlite_path()
            if path is not None and not path.exists():
                return None
            self._store = TwinStore.open(self.url)
        return self._store

    def fleet(self) -> dict[str, Any]:
        """``{"available", "count", "cars", "open", "error"}``; never raises."""
        with self._lock:
            try:
                store = self._open()
                if store is None:
                    return _unavailable(f"no twin database at {self.describe()} yet")
                cars = [car.to_dict() for car in store.fleet()]
            except LakelessError as exc:
                return _unavailable(str(exc))
        cars.sort(key=lambda c: (not c["episode_open"], c["car_id"]))
        return {
            "available": True,
            "count": len(cars),
            "open": sum(1 for c in cars if c["episode_open"]),
            "cars": cars[: self.max_cars],
            "error": None,
        }

    def car(self, car_id: str, readings: int, anomalies: int) -> dict[str, Any] | None:
        """One car with its recent readings and anomalies (``None``: unknown car).

        Raises:
            LakelessError: the twin cannot be read.
        """
        with self._lock:
            store = self._open()
            if store is None:
                return None
            state = store.car(car_id)
            if state is None:
                return None
            return {
                "car": state.to_dict(),
                "readings": [r.to_dict() for r in store.recent_readings(car_id, readings)],
                "anomalies": [a.to_dict() for a in store.recent_anomalies(car_id, anomalies)],
            }

    def close(self) -> None:
        """Close the connection (a later query opens it again)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "count": 0, "open": 0, "cars": [], "error": reason}
