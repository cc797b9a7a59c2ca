"""`PostgresTwinStore`: the twin in PostgreSQL, via psycopg 3.

The same tables and statements as SQLite (``?`` placeholders become ``%s``). Batches go through
``executemany``, which psycopg pipelines (one round trip per batch, not per row). Every write is
keyed and forward-only, so several twin processes of one consumer group can share one database:
each writes the cars of its own partitions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from lakeless.errors import ConfigError
from lakeless.twin._store import TwinError, TwinStore

__all__ = ["PostgresTwinStore"]


class PostgresTwinStore(TwinStore):
    """The twin in a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/database`` (libpq connection URI).
        connect_timeout: seconds to wait for the server.
        **options: `TwinStore` arguments.
    """

    integer_type = "BIGINT"
    real_type = "DOUBLE PRECISION"

    def __init__(self, url: str, *, connect_timeout: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a dependency of lakeless
            raise ConfigError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from exc
        self._psycopg = psycopg
        self.url = url
        try:
            self._db = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            )
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS twin_touched (car_id TEXT PRIMARY KEY)"
            )
        except psycopg.Error as exc:
            raise TwinError(f"cannot open the twin database {self._safe_url}: {exc}") from exc
        self._lock = threading.RLock()
        self._create_schema()

    @property
    def _safe_url(self) -> str:
        """`url` without its password (for messages)."""
        head, at, tail = self.url.rpartition("@")
        if not at:
            return self.url
        scheme, _, credentials = head.partition("://")
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{tail}"

    def __repr__(self) -> str:
        return f"PostgresTwinStore({self._safe_url!r})"

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(self._sql(sql), params).rowcount

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with self._lock, self._db.cursor() as cursor:
            cursor.executemany(self._sql(sql), rows)
            return cursor.rowcount

    def _insert(
        self, table: str, columns: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        # One statement, one array per column: executemany costs the server a parse-bind-execute
        # per row, and a multi-row VALUES list a huge statement to parse (both measured slower).
        if not rows:
            return 0
        arrays = [list(column) for column in zip(*rows, strict=True)]
        unnest = ", ".join(f"%s::{kind}[]" for kind in types)
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({unnest}) ON CONFLICT DO NOTHING"
        )
        with self._lock:
            return self._db.execute(sql, arrays).rowcount

    def _touched(self) -> None:
        # Temporary tables are never auto-analyzed: without statistics the planner assumes
        # thousands of rows and scans whole tables in the pruning statements.
        self._execute("ANALYZE twin_touched")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(self._sql(sql), params).fetchall()

    def _columns(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock, self._db.cursor() as cursor:
            cursor.execute(self._sql(sql), params)
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[None]:
        with self._lock:
            try:
                with self._db.transaction():
                    if not write:  # one consistent view over several statements (snapshot)
                        self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    yield
            except self._psycopg.Error as exc:
                raise TwinError(f"twin database error: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
