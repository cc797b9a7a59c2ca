"""`TwinStore`: the digital twin's tables and the one transaction that applies a batch to them.

Four tables per pipeline, the same in SQLite and PostgreSQL, named ``<p>_...`` where ``<p>``
is the pipeline name with ``-`` as ``_`` (``car_fleet_entities``), so pipelines can share a
database:

``<p>_entities`` (one row per entity: a car, a pump, ...)
    the latest reading (``last_position``, ``last_time``, ``reading``: every field of the
    reading with the highest position, as a JSON document by the schema's field names,
    ``label``), ``events`` and ``anomalies`` (counts), the last anomaly (``last_anomaly_*``),
    the latest failure episode (``episode_since``, ``episode_anomalies``, ``episode_open``), and
    the bookkeeping that keeps counts exact while old rows are pruned (``*_floor``,
    ``*_pruned``).
``<p>_readings``, primary key ``(entity, position)``
    the last ``keep_readings`` readings of each entity (for per-entity charts).
``<p>_anomalies``, primary key ``(entity, position, model, model_version)``
    the last ``keep_anomalies`` anomaly records of each entity.
``<p>_meta``
    the table layout version and the pipeline.

A reading's *position* orders an entity's readings and identifies them: the schema's sequence
field, or its time when it has none (then two readings of one entity at the same time are one).

Idempotence: every write is keyed, so applying the same events again (a replay, or a batch
processed twice after a crash before the Kafka commit) leaves every table exactly as it was.
Readings and anomalies are inserted with ``ON CONFLICT DO NOTHING``; the latest reading and the
last anomaly of an entity only move forward (``UPDATE ... WHERE new key > stored key``), so an
older or replayed event never overwrites newer state, in whatever order events arrive. Counts
move only by the rows an insert really added (a replay adds none), so they stay
``pruned + retained rows``. When an entity has more than ``keep`` rows, the rows below the
``keep``-th newest position are deleted and added to ``*_pruned``, and that position becomes the
entity's *floor*: a later event below the floor is a replay or arrives too late to tell apart
from one, so it is ignored (dropped before the insert).

Failure episodes (event time, never the wall clock, so a replay gives the same answer): an
episode is a run of an entity's anomalies whose consecutive event times are at most
``episode_gap_ms`` apart; ``episode_since`` is the first anomaly of the latest run and
``episode_anomalies`` its anomaly count (over the retained rows). The episode is *open* while
the entity's latest reading is at most ``episode_gap_ms`` after its last anomaly (or no reading
is newer than it). The ground-truth label is kept beside it, never used for it, so detection
and truth can be compared.

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.schema import CleanCodec, Decoder, EventCodec
    >>> from lakeless.twin import open_store
    >>> schema = car_fleet()
    >>> event = EventCodec(schema).from_dict(schema.example(car_id="car-1", seq=3))
    >>> batch = Decoder(schema).decode([CleanCodec(schema).encode(event)])
    >>> store = open_store("sqlite:///:memory:", schema)
    >>> store.apply(batch, []).new_readings
    1
    >>> store.apply(batch, []).new_readings  # a replay changes nothing
    0
    >>> car = store.entity("car-1")
    >>> car.last_position, car.events, car.episode_open, car.reading["speed"]
    (3, 1, False, 25.0)
    >>> store.close()
"""

from __future__ import annotations

import collections
import contextlib
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

from lakeless._mixins import Closing
from lakeless.errors import ConfigError
from lakeless.schema import CleanBatch, PipelineSchema
from lakeless.schema.outputs import AnomalyRecord
from lakeless.twin._records import (
    AnomalyRow,
    ApplyResult,
    DocumentEncoder,
    EntityState,
    Reading,
    TwinError,
    anomaly_row,
    entity_state,
    normal,
    retained_anomaly,
    retained_reading,
)
from lakeless.twin._settings import (
    DEFAULT_EPISODE_GAP_MS,
    DEFAULT_KEEP_ANOMALIES,
    DEFAULT_KEEP_READINGS,
)
from lakeless.twin._tables import LAYOUT_VERSION, Tables, ddl

__all__ = ["TwinStore"]

_READING_COLS: Final = "entity, position, time, reading, label"
_ANOMALY_COLS: Final = (
    "entity, position, time, score, threshold, model, model_version, top_features, label"
)
_TOUCHED: Final = "(SELECT entity FROM twin_touched)"


class TwinStore(Closing):
    """The twin's storage: one implementation per database, the same tables and semantics.

    Open one with `lakeless.twin.open_store`. A store is a single connection: use it from one
    thread at a time (the HTTP API serialises its requests). Writers of different entities may
    share a database (one per consumer-group member: entities are partitioned by key).

    Args:
        schema: the pipeline's schema (which fields a reading holds).
        pipeline: the pipeline name (the tables' prefix).
        read_only: never create or change anything (the dashboard's view).
        keep_readings: readings kept per entity.
        keep_anomalies: anomaly records kept per entity.
        episode_gap_ms: see the module docstring.
    """

    #: Column types of this database.
    integer_type: str = "INTEGER"
    real_type: str = "REAL"
    json_type: str = "TEXT"
    #: Array element types of `_insert`'s columns, for databases that send columns as arrays.
    reading_types: Sequence[str] = ("text", "int8", "int8", "text", "text")
    anomaly_types: Sequence[str] = (
        "text",
        "int8",
        "int8",
        "float8",
        "float8",
        "text",
        "int8",
        "text",
        "text",
    )

    def __init__(
        self,
        schema: PipelineSchema,
        pipeline: str = "car-fleet",
        *,
        read_only: bool = False,
        keep_readings: int = DEFAULT_KEEP_READINGS,
        keep_anomalies: int = DEFAULT_KEEP_ANOMALIES,
        episode_gap_ms: int = DEFAULT_EPISODE_GAP_MS,
    ) -> None:
        if keep_readings < 1 or keep_anomalies < 1 or episode_gap_ms < 0:
            raise ConfigError("keep_readings and keep_anomalies >= 1, episode_gap_ms >= 0")
        self.schema = schema
        self.pipeline = pipeline
        self.read_only = read_only
        self.keep_readings = keep_readings
        self.keep_anomalies = keep_anomalies
        self.episode_gap_ms = episode_gap_ms
        self.tables = Tables.of(pipeline)
        self.entities, self.readings, self.anomalies, self.meta = self.tables
        self._ready = False
        self._documents = DocumentEncoder(schema)

    # ---- tables --------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        """Create the tables when missing (never in read-only mode) and check what they hold."""
        if self.read_only:
            self.ready()  # checks the tables if they exist already
            return
        with self._transaction():
            for statement in ddl(self.tables, self.integer_type, self.real_type, self.json_type):
                self._execute(statement)
            rows = self._query(f"SELECT key, value FROM {self.meta}")
            if not rows:
                rows = [("layout_version", str(LAYOUT_VERSION)), ("pipeline", self.pipeline)]
                self._executemany(f"INSERT INTO {self.meta} (key, value) VALUES (?, ?)", rows)
            self._check_meta(rows)
        self._ready = True

    def _check_meta(self, rows: Sequence[tuple[Any, ...]]) -> None:
        meta = dict(rows)
        version = meta.get("layout_version")
        if version != str(LAYOUT_VERSION):
            raise TwinError(
                f"twin tables {self.meta}... have layout version {version}, this lakeless "
                f"uses {LAYOUT_VERSION}: use another database or drop those tables"
            )
        owner = meta.get("pipeline")
        if owner != self.pipeline:
            raise TwinError(
                f"twin tables {self.meta}... belong to pipeline {owner!r}, not {self.pipeline!r} "
                "(their names map to the same tables): use another database for one of them"
            )

    def ready(self) -> bool:
        """Whether the twin's tables exist (a read-only store may be opened before them).

        Raises:
            TwinError: they exist but hold another layout version or another pipeline.
        """
        if self._ready:
            return True
        try:
            rows = self._query(f"SELECT key, value FROM {self.meta}")
        except Exception:  # the driver's "no such table" errors differ per database
            return False
        self._check_meta(rows)
        self._ready = True
        return True

    # ---- the database primitives each implementation provides ---------------------------------

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (``?`` placeholders); return the affected row count."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per row; return the total affected row count."""

    def _insert(
        self, table: str, columns: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        """Insert ``rows`` (``ON CONFLICT DO NOTHING``); return how many were new."""
        marks = ", ".join("?" * len(types))
        return self._executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows
        )

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query."""

    @abstractmethod
    def _columns(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query as column-name dicts."""

    @abstractmethod
    def _transaction(self, write: bool = True) -> contextlib.AbstractContextManager[None]:
        """A transaction: committed when the block ends, rolled back when it raises."""

    def _touched(self) -> None:
        """Called once ``twin_touched`` holds the batch's entities (PostgreSQL analyzes it)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    # ---- writing -------------------------------------------------------------------------------

    def apply(self, readings: CleanBatch, anomalies: Sequence[AnomalyRecord]) -> ApplyResult:
        """Apply a batch of readings and anomaly records in one transaction.

        Applying the same records again, in any split into batches and any order, leaves the
        tables unchanged (see the module docstring for the one exception: events older than an
        entity's retained window are ignored).

        Raises:
            TwinError: the database refused the batch (nothing of it is stored), or the store
                is read-only.
        """
        if self.read_only:
            raise TwinError("this twin store is read-only")
        if not len(readings) and not anomalies:
            return ApplyResult(0, 0, 0)
        reading_rows = self._documents.rows(readings)
        anomaly_rows = [anomaly_row(a) for a in anomalies]
        entities = sorted({row[0] for row in reading_rows} | {a.key for a in anomalies})
        e = self.entities
        try:
            with self._transaction():
                self._insert("twin_touched", "entity", ["text"], [(k,) for k in entities])
                self._touched()
                self._execute(
                    f"INSERT INTO {e} (entity) SELECT entity FROM twin_touched WHERE true "
                    "ON CONFLICT (entity) DO NOTHING"
                )
                new_readings = self._apply_readings(reading_rows)
                new_anomalies = self._apply_anomalies(anomaly_rows)
                self._update_episodes(sorted({a.key for a in anomalies}))
                self._execute("DELETE FROM twin_touched")
        except TwinError:
            raise
        except Exception as exc:  # the driver's own error types differ per database
            raise TwinError(f"twin database refused a batch: {exc}") from exc
        return ApplyResult(len(entities), new_readings, new_anomalies)

    def _apply_readings(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        rows, inserted = self._store_rows(
            self.readings, _READING_COLS, self.reading_types, rows, "readings", "events",
            self.keep_readings,
        )  # fmt: skip
        latest = _newest(rows, itemgetter(1))
        # Only forward: an older or replayed reading never overwrites a newer one.
        self._executemany(
            f"UPDATE {self.entities} SET last_position = ?, last_time = ?, reading = ?, "
            "label = ? WHERE entity = ? AND (last_position IS NULL OR last_position < ?)",
            [(*row[1:], row[0], row[1]) for row in latest.values()],
        )
        return inserted

    def _apply_anomalies(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        rows, inserted = self._store_rows(
            self.anomalies, _ANOMALY_COLS, self.anomaly_types, rows, "anomalies", "anomalies",
            self.keep_anomalies,
        )  # fmt: skip
        latest = _newest(rows, itemgetter(1, 6, 5))
        self._executemany(
            f"UPDATE {self.entities} SET last_anomaly_position = ?, last_anomaly_time = ?, "
            "last_anomaly_score = ?, last_anomaly_threshold = ?, last_anomaly_model = ?, "
            "last_anomaly_version = ?, last_anomaly_label = ? WHERE entity = ? AND "
            "(last_anomaly_position IS NULL OR (?, ?, ?) > "
            "(last_anomaly_position, last_anomaly_version, last_anomaly_model))",
            [
                (r[1], r[2], r[3], r[4], r[5], r[6], r[8], r[0], r[1], r[6], r[5])
                for r in latest.values()
            ],
        )
        return inserted

    def _store_rows(
        self,
        table: str,
        columns: str,
        types: Sequence[str],
        rows: list[tuple[Any, ...]],
        prefix: str,
        count: str,
        keep: int,
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Insert a batch's rows of ``table``, keep each entity's newest ``keep``, count.

        Rows below their entity's floor are dropped first (replays, or too late to tell apart
        from one). Counts only move by what is new: ``count += new rows``; pruning moves rows
        from retained to ``*_pruned``. An entity over ``keep`` gets a new floor, the position
        of its ``keep``-th newest row, found by skipping its excess from the oldest retained
        row (an index walk over the excess only), and its rows below the floor are deleted.

        Returns:
            The rows at or above their entity's floor, and how many of them were new.
        """
        e = self.entities
        state = {
            entity: (floor, retained)
            for entity, floor, retained in self._query(
                f"SELECT entity, {prefix}_floor, {count} - {prefix}_pruned FROM {e} "
                f"WHERE entity IN {_TOUCHED}"
            )
        }
        rows = [r for r in rows if (floor := state[r[0]][0]) is None or r[1] >= floor]
        new = self._insert_new(table, columns, types, rows, {k: v[1] for k, v in state.items()})
        if not new:
            return rows, 0
        self._executemany(
            f"UPDATE {e} SET {count} = {count} + ? WHERE entity = ?",
            [(n, entity) for entity, n in new.items()],
        )
        over = [
            (retained + new[entity] - keep, entity)
            for entity, (_floor, retained) in state.items()
            if retained + new.get(entity, 0) > keep
        ]
        if over:
            self._executemany(
                f"UPDATE {e} SET {prefix}_floor = (SELECT t.position FROM {table} t WHERE "
                "t.entity = ? ORDER BY t.position LIMIT 1 OFFSET ?) WHERE entity = ?",
                [(entity, skip, entity) for skip, entity in over],
            )
            below = (
                f"SELECT t.entity, t.position FROM twin_touched x JOIN {e} c ON c.entity = "
                f"x.entity JOIN {table} t ON t.entity = c.entity AND t.position < "
                f"c.{prefix}_floor"
            )
            # Duplicate positions (anomalies of several model versions) may keep a few more
            # than `keep`: count what goes, rather than assume it.
            self._execute(
                f"UPDATE {e} SET {prefix}_pruned = {prefix}_pruned + (SELECT COUNT(*) FROM "
                f"{table} t WHERE t.entity = {e}.entity AND t.position < {e}.{prefix}_floor) "
                f"WHERE entity IN {_TOUCHED} AND {prefix}_floor IS NOT NULL"
            )
            self._execute(f"DELETE FROM {table} WHERE (entity, position) IN ({below})")
        return rows, sum(new.values())

    def _insert_new(
        self,
        table: str,
        columns: str,
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
        retained: Mapping[str, int],
    ) -> dict[str, int]:
        """Insert ``rows`` (``ON CONFLICT DO NOTHING``); how many were new, per entity.

        Args:
            table: the table.
            columns: its columns, comma-separated, in row order (the entity first).
            types: the columns' PostgreSQL types (for databases that send columns as arrays).
            rows: the rows.
            retained: the touched entities' rows in ``table`` before.
        """
        if not rows:
            return {}
        inserted = self._insert(table, columns, types, rows)
        if inserted == len(rows):  # all new: no need to ask
            return dict(collections.Counter(row[0] for row in rows))
        if not inserted:
            return {}
        after = self._query(
            f"SELECT entity, COUNT(*) FROM {table} WHERE entity IN {_TOUCHED} GROUP BY entity"
        )
        return {entity: n - retained[entity] for entity, n in after if n > retained[entity]}

    def _update_episodes(self, anomalous: list[str]) -> None:
        gap = self.episode_gap_ms
        e = self.entities
        # The episode start only moves when an entity's anomalies change: walk back from its
        # newest anomaly until a gap wider than `gap` (usually a few rows).
        for entity in anomalous:
            state = self._query(
                f"SELECT episode_since, anomalies_pruned FROM {e} WHERE entity = ?", (entity,)
            )
            old_since, pruned = state[0]
            times = [
                row[0]
                for row in self._query(
                    f"SELECT time FROM {self.anomalies} WHERE entity = ? ORDER BY time DESC",
                    (entity,),
                )
            ]
            if not times:
                continue
            since, count = times[0], 1
            for ts in times[1:]:
                if since - ts > gap:
                    break
                since, count = ts, count + 1
            else:
                # The run reaches the oldest retained anomaly: it may go on among pruned ones.
                if pruned and old_since is not None and old_since < since:
                    since = old_since
            self._execute(
                f"UPDATE {e} SET episode_since = ?, episode_anomalies = ? WHERE entity = ?",
                (since, count, entity),
            )
        self._execute(
            f"UPDATE {e} SET episode_open = CASE WHEN last_anomaly_time IS NOT NULL AND "
            "(last_time IS NULL OR last_time - last_anomaly_time <= ?) THEN 1 ELSE 0 END "
            f"WHERE entity IN {_TOUCHED}",
            (gap,),
        )

    # ---- reading -------------------------------------------------------------------------------

    def entity(self, key: str) -> EntityState | None:
        """The state of one entity (``None``: never seen)."""
        if not self.ready():
            return None
        rows = self._columns(f"SELECT * FROM {self.entities} WHERE entity = ?", (key,))
        return entity_state(rows[0]) if rows else None

    def all_entities(self) -> list[EntityState]:
        """Every entity, ordered by key."""
        if not self.ready():
            return []
        return [
            entity_state(r) for r in self._columns(f"SELECT * FROM {self.entities} ORDER BY entity")
        ]

    def open_anomalies(self) -> list[EntityState]:
        """Entities in an open failure episode, the longest-running episode first."""
        if not self.ready():
            return []
        rows = self._columns(
            f"SELECT * FROM {self.entities} WHERE episode_open = 1 ORDER BY episode_since, entity"
        )
        return [entity_state(r) for r in rows]

    def recent_readings(self, key: str, limit: int = 100) -> list[Reading]:
        """The entity's last ``limit`` retained readings, oldest first."""
        rows = self._recent(self.readings, _READING_COLS, "position DESC", key, limit)
        return [retained_reading(r) for r in rows]

    def recent_anomalies(self, key: str, limit: int = 100) -> list[AnomalyRow]:
        """The entity's last ``limit`` retained anomaly records, oldest first."""
        newest_first = "position DESC, model_version DESC, model DESC"
        rows = self._recent(self.anomalies, _ANOMALY_COLS, newest_first, key, limit)
        return [retained_anomaly(r) for r in rows]

    def _recent(
        self, table: str, columns: str, newest_first: str, key: str, limit: int
    ) -> list[dict[str, Any]]:
        """The entity's newest ``limit`` rows of ``table`` (by ``newest_first``), oldest first."""
        if not self.ready():
            return []
        rows = self._columns(
            f"SELECT {columns} FROM {table} WHERE entity = ? ORDER BY {newest_first} LIMIT ?",
            (key, limit),
        )
        return rows[::-1]

    def counts(self) -> dict[str, int]:
        """Entities, entities in an open episode, events and anomaly records."""
        if not self.ready():
            return {"entities": 0, "open_episodes": 0, "events": 0, "anomalies": 0}
        (row,) = self._query(
            "SELECT COUNT(*), COALESCE(SUM(episode_open), 0), COALESCE(SUM(events), 0), "
            f"COALESCE(SUM(anomalies), 0) FROM {self.entities}"
        )
        return {
            "entities": int(row[0]),
            "open_episodes": int(row[1]),
            "events": int(row[2]),
            "anomalies": int(row[3]),
        }

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, in key order: equal snapshots mean equal twins."""
        if not self.ready():
            return {"entities": [], "readings": [], "anomalies": []}
        with self._transaction(write=False):
            return {
                "entities": [
                    normal(r)
                    for r in self._columns(f"SELECT * FROM {self.entities} ORDER BY entity")
                ],
                "readings": [
                    normal(r)
                    for r in self._columns(
                        f"SELECT {_READING_COLS} FROM {self.readings} ORDER BY entity, position"
                    )
                ],
                "anomalies": self._columns(
                    f"SELECT {_ANOMALY_COLS} FROM {self.anomalies} "
                    "ORDER BY entity, position, model, model_version"
                ),
            }


def _newest(
    rows: Sequence[tuple[Any, ...]], order: Callable[[tuple[Any, ...]], Any]
) -> dict[str, tuple[Any, ...]]:
    """Each entity's (``row[0]``) greatest row by ``order``; the first of equal ones."""
    newest: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        best = newest.get(row[0])
        if best is None or order(row) > order(best):
            newest[row[0]] = row
    return newest
