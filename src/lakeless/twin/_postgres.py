"""`PostgresTwinStore`: the twin in PostgreSQL, via psycopg 3.

The same tables and statements as SQLite (`psycopg_sql` turns their ``?`` placeholders into
``%s``), the reading documents as ``JSONB``. Rows are inserted with one ``unnest`` per batch;
updates go through ``executemany``, which psycopg pipelines (one round trip per batch, not per
row). Every write is keyed and forward-only, so several twin processes of one consumer group
can share one database: each writes the entities of its own partitions. A read-only store runs
every query in a read-only transaction.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from lakeless.errors import ConfigError
from lakeless.twin._records import TwinError
from lakeless.twin._store import TwinStore

__all__ = ["PostgresTwinStore", "psycopg_sql"]

#: Columns of JSON text (compact JSON never holds a raw newline: it is escaped in strings).
_JSON_LINES: Final = frozenset({"reading", "top_features"})


def psycopg_sql(sql: str) -> str:
    r"""``?`` placeholders as ``%s`` outside quoted literals and names, every ``%`` as ``%%``.

    psycopg reads ``%`` anywhere in a query with parameters, inside literals too.

    Example:
        >>> psycopg_sql("SELECT '?%' AS \"a?\", x FROM t WHERE y = ? AND z LIKE 'a%'")
        'SELECT \'?%%\' AS "a?", x FROM t WHERE y = %s AND z LIKE \'a%%\''
    """
    out = []
    quote: str | None = None
    for char in sql:
        if char == "%":
            out.append("%%")
        elif quote is not None:
            out.append(char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


class PostgresTwinStore(TwinStore):
    """The twin in a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/database`` (libpq connection URI).
        connect_timeout: seconds to wait for the server.
        **options: `TwinStore` arguments.
    """

    integer_type = "BIGINT"
    real_type = "DOUBLE PRECISION"
    json_type = "JSONB"
    reading_types = ("text", "int8", "int8", "jsonb", "text")

    def __init__(self, url: str, *args: Any, connect_timeout: float = 10.0, **options: Any) -> None:
        super().__init__(*args, **options)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a dependency of lakeless
            raise ConfigError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from exc
        self._psycopg = psycopg
        self.url = url
        try:
            # No JIT: the pruning statements' estimates are large enough to trigger it, and
            # compiling them took longer than running them (measured: 0.6 s of 1.1 s).
            server = "-c jit=off"
            if self.read_only:
                server += " -c default_transaction_read_only=on"
            self._db = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(connect_timeout)),
                options=server,
            )
            if not self.read_only:
                self._db.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS twin_touched (entity TEXT PRIMARY KEY)"
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
        return f"PostgresTwinStore({self._safe_url!r}{', read-only' if self.read_only else ''})"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(psycopg_sql(sql), params).rowcount

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with self._lock, self._db.cursor() as cursor:
            cursor.executemany(psycopg_sql(sql), rows)
            return cursor.rowcount

    def _insert(
        self, table: str, columns: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        if not rows:
            return 0
        sql, arrays = self._unnest_insert(table, columns, types, rows)
        with self._lock:
            return self._db.execute(sql, arrays).rowcount

    def _insert_new(
        self,
        table: str,
        columns: str,
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
        retained: Mapping[str, int],
    ) -> dict[str, int]:
        if not rows:
            return {}
        sql, arrays = self._unnest_insert(table, columns, types, rows)
        with self._lock:
            new = self._db.execute(sql + " RETURNING entity", arrays).fetchall()
        return dict(collections.Counter(entity for (entity,) in new))

    @staticmethod
    def _unnest_insert(
        table: str, columns: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[Any]]:
        """One ``INSERT ... SELECT FROM unnest(...)`` of ``rows``, with one array per column.

        executemany costs the server a parse-bind-execute per row, and a multi-row VALUES list
        a huge statement to parse (both measured slower). JSON columns travel as one
        newline-separated text that the server splits: as array elements, psycopg would escape
        every quote of every document in Python (5x slower).
        """
        names = [name.strip() for name in columns.split(",")]
        arrays: list[Any] = []
        unnest = []
        for name, kind, column in zip(names, types, zip(*rows, strict=True), strict=True):
            if name in _JSON_LINES:
                arrays.append("\n".join(column))
                unnest.append(f"string_to_array(%s, chr(10))::{kind}[]")
            else:
                arrays.append(list(column))
                unnest.append(f"%s::{kind}[]")
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({', '.join(unnest)}) "
            "ON CONFLICT DO NOTHING"
        )
        return sql, arrays

    def _touched(self) -> None:
        # Temporary tables are never auto-analyzed: without statistics the planner assumes
        # thousands of rows and scans whole tables in the pruning statements.
        self._execute("ANALYZE twin_touched")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._reading():
            return self._db.execute(psycopg_sql(sql), params).fetchall()

    def _columns(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock, self._reading(), self._db.cursor() as cursor:
            cursor.execute(psycopg_sql(sql), params)
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            raise TwinError(f"cannot read the twin database {self._safe_url}: {exc}") from exc

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
