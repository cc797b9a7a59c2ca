"""`SqliteTwinStore`: the twin in one SQLite file (the default), via the standard library.

WAL journal, so readers (the HTTP API, a dashboard) never block the writer and see only committed
batches; ``synchronous=FULL``, so a batch whose Kafka offsets were committed after its transaction
survives a power loss too (with ``NORMAL`` the last transactions could roll back while Kafka
already moved on, and their events would never be applied). A read-only store opens the file
with ``mode=ro`` and runs no statement that writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lakeless.twin._records import TwinError
from lakeless.twin._store import TwinStore

__all__ = ["SqliteTwinStore"]


@contextlib.contextmanager
def _reading(path: Path | str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise TwinError(f"cannot read the twin database {path}: {exc}") from exc


def _switch_to_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Set the WAL journal, waiting up to ``timeout`` for another connection doing the same.

    Switching a new file to WAL needs its exclusive lock, and when two connections open the file
    at once SQLite answers one of them "database is locked" at once (a lock upgrade that could
    deadlock does not call the busy handler), so the wait is ours.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class SqliteTwinStore(TwinStore):
    """The twin in a SQLite database file.

    Args:
        path: the database file (created with its parent folders), or ``":memory:"``.
        *args: `TwinStore` arguments.
        timeout: seconds to wait for another writer's lock.
        **options: `TwinStore` arguments.
    """

    def __init__(self, path: Path | str, *args: Any, timeout: float = 30.0, **options: Any) -> None:
        super().__init__(*args, **options)
        self.path = path
        try:
            if self.read_only:
                if path != ":memory:" and not Path(path).exists():
                    raise TwinError(f"no twin database at {path} yet")
                # A URI, so that mode=ro applies; the path quoted (it may hold "?" or "#").
                target = (
                    "file::memory:"
                    if path == ":memory:"
                    else f"{Path(path).absolute().as_uri()}?mode=ro"
                )
                self._db = sqlite3.connect(
                    target, timeout=timeout, uri=True, check_same_thread=False
                )
            else:
                if isinstance(path, Path):
                    path.parent.mkdir(parents=True, exist_ok=True)
                # Autocommit mode: transactions are explicit (BEGIN / COMMIT in `_transaction`).
                self._db = sqlite3.connect(
                    path, timeout=timeout, isolation_level=None, check_same_thread=False
                )
                _switch_to_wal(self._db, timeout)
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS twin_touched (entity TEXT PRIMARY KEY)"
                )
        except (sqlite3.Error, OSError) as exc:
            raise TwinError(f"cannot open the twin database {path}: {exc}") from exc
        # One connection may be shared by threads (the API's); it must not be used concurrently.
        self._lock = threading.RLock()
        self._create_schema()

    def __repr__(self) -> str:
        return f"SqliteTwinStore({str(self.path)!r}{', read-only' if self.read_only else ''})"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return self._db.executemany(sql, rows).rowcount if rows else 0

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, _reading(self.path):
            return self._db.execute(sql, params).fetchall()

    def _columns(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock, _reading(self.path):
            cursor = self._db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[None]:
        with self._lock:
            if self.read_only:
                yield  # each statement reads a consistent snapshot (WAL)
                return
            # IMMEDIATE takes the write lock at once (waiting up to `timeout`), so a writer never
            # fails half-way on a snapshot another writer made stale.
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
