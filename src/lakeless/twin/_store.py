"""`TwinStore`: the digital twin's tables and the one transaction that applies a batch to them.

Three tables, the same in SQLite and PostgreSQL:

``cars`` (one row per car)
    the latest reading (``model``, ``last_seq``, ``last_ts``, the 18 features, ``failure``: the
    reading with the highest ``seq``), ``events`` and ``anomalies`` (counts), the last anomaly
    (``last_anomaly_*``: the anomaly with the highest ``(seq, model_version, model)``), the
    latest failure episode (``episode_since``, ``episode_anomalies``, ``episode_open``), and the
    bookkeeping that keeps counts exact while old rows are pruned (``*_floor``, ``*_pruned``).
``readings``, primary key ``(car_id, seq)``
    the last ``keep_readings`` readings of each car (for per-car charts).
``anomalies``, primary key ``(car_id, seq, model, model_version)``
    the last ``keep_anomalies`` anomaly records of each car.

Idempotence: every write is keyed, so applying the same events again (a replay, or a batch
processed twice after a crash before the Kafka commit) leaves every table exactly as it was.
Readings and anomalies are inserted with ``ON CONFLICT DO NOTHING``; the latest reading and the
last anomaly of a car only move forward (``UPDATE ... WHERE new key > stored key``), so an older
or replayed event never overwrites newer state, in whatever order events arrive. Counts are not
incremented: they are recomputed as ``pruned + COUNT(*)`` over the keyed rows. When a car has more
than ``keep`` rows, the rows below the ``keep``-th newest ``seq`` are deleted and added to
``*_pruned``, and that ``seq`` becomes the car's *floor*: a later event below the floor is a
replay or arrives too late to tell apart from one, so it is ignored (not stored, not counted).

Failure episodes (event time, never the wall clock, so a replay gives the same answer): an
episode is a run of a car's anomalies whose consecutive event times are at most
``episode_gap_ms`` apart; ``episode_since`` is the first anomaly of the car's latest run and
``episode_anomalies`` its anomaly count (over the retained rows). The episode is *open* while
the car's latest reading is at most ``episode_gap_ms`` after its last anomaly (or no reading is
newer than it). The ground-truth label (``failure``) is kept beside it, never used for it, so
detection and truth can be compared.

Example:
    >>> store = TwinStore.open("sqlite:///:memory:")
    >>> from lakeless.schema import decode_event, encode_clean, make_example_json
    >>> from lakeless.schema import decode_clean_batch
    >>> batch = decode_clean_batch([encode_clean(decode_event(make_example_json("car-1", 3)))])
    >>> store.apply(batch, []).new_readings
    1
    >>> store.apply(batch, []).new_readings  # a replay changes nothing
    0
    >>> car = store.car("car-1")
    >>> car.last_seq, car.events, car.episode_open
    (3, 1, False)
    >>> store.close()
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from lakeless.errors import ConfigError, LakelessError
from lakeless.schema import FEATURES, CleanBatch
from lakeless.score._output import Anomaly

__all__ = [
    "DEFAULT_EPISODE_GAP_MS",
    "DEFAULT_KEEP_ANOMALIES",
    "DEFAULT_KEEP_READINGS",
    "SCHEMA_VERSION",
    "AnomalyRow",
    "ApplyResult",
    "CarState",
    "LastAnomaly",
    "Reading",
    "TwinError",
    "TwinStore",
]

#: Version of the twin's table layout, stored in ``twin_meta``.
SCHEMA_VERSION: Final = 1
#: Readings kept per car (10 minutes at one event a second).
DEFAULT_KEEP_READINGS: Final = 600
#: Anomaly records kept per car.
DEFAULT_KEEP_ANOMALIES: Final = 1000
#: Most event-time milliseconds between two anomalies of one episode (and after the last one
#: while the episode stays open).
DEFAULT_EPISODE_GAP_MS: Final = 60_000

_FEATURE_COLS: Final = ", ".join(FEATURES)
_READING_COLS: Final = f"car_id, seq, ts, model, {_FEATURE_COLS}, failure"
_ANOMALY_COLS: Final = (
    "car_id, seq, ts, score, threshold, model, model_version, top_features, failure"
)
_READING_TYPES: Final = ("text", "int8", "int8", "text", *["float8"] * len(FEATURES), "text")
_ANOMALY_TYPES: Final = ("text", "int8", "int8", "float8", "float8", "text", "int8", "text", "text")
_TOUCHED: Final = "(SELECT car_id FROM twin_touched)"


class TwinError(LakelessError):
    """The twin's database cannot be opened, is of another schema version, or failed."""


@dataclass(frozen=True)
class LastAnomaly:
    """The most recent anomaly of a car (highest ``seq``, then model version)."""

    seq: int
    ts: int
    score: float
    threshold: float
    model: str
    model_version: int
    failure: str | None


@dataclass(frozen=True)
class CarState:
    """What the twin knows about one car.

    Attributes:
        car_id: the car.
        model: vehicle model (from its latest reading; ``None`` before any reading).
        last_seq: ``seq`` of the latest reading.
        last_ts: event time of the latest reading, ms since the epoch.
        failure: ground-truth label of the latest reading, when labelled.
        features: the latest reading's sensor values, by feature name.
        events: distinct readings received (keyed by ``seq``).
        anomalies: distinct anomaly records received (one per event and model version).
        last_anomaly: the most recent anomaly.
        episode_open: whether the car is in a failure episode now (event time).
        episode_since: event time of the first anomaly of the latest episode.
        episode_anomalies: anomalies in the latest episode (among the retained ones).
    """

    car_id: str
    model: str | None
    last_seq: int | None
    last_ts: int | None
    failure: str | None
    features: dict[str, float] | None
    events: int
    anomalies: int
    last_anomaly: LastAnomaly | None
    episode_open: bool
    episode_since: int | None
    episode_anomalies: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Reading:
    """One retained reading of a car."""

    car_id: str
    seq: int
    ts: int
    model: str
    failure: str | None
    features: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class AnomalyRow:
    """One retained anomaly record of a car (see `lakeless.score.Anomaly`)."""

    car_id: str
    seq: int
    ts: int
    score: float
    threshold: float
    model: str
    model_version: int
    top_features: list[dict[str, Any]]
    failure: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class ApplyResult:
    """What one `TwinStore.apply` changed.

    Attributes:
        cars: cars touched by the batch.
        new_readings: readings stored for the first time (replays and stale ones excluded).
        new_anomalies: anomaly records stored for the first time.
    """

    cars: int
    new_readings: int
    new_anomalies: int


def _ddl(integer: str, real: str) -> list[str]:
    features = ", ".join(f"{name} {real}" for name in FEATURES)
    return [
        "CREATE TABLE IF NOT EXISTS twin_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS cars (
            car_id TEXT PRIMARY KEY,
            model TEXT,
            last_seq {integer},
            last_ts {integer},
            {features},
            failure TEXT,
            events {integer} NOT NULL DEFAULT 0,
            readings_floor {integer},
            readings_pruned {integer} NOT NULL DEFAULT 0,
            anomalies {integer} NOT NULL DEFAULT 0,
            anomalies_floor {integer},
            anomalies_pruned {integer} NOT NULL DEFAULT 0,
            last_anomaly_seq {integer},
            last_anomaly_ts {integer},
            last_anomaly_score {real},
            last_anomaly_threshold {real},
            last_anomaly_model TEXT,
            last_anomaly_version {integer},
            last_anomaly_failure TEXT,
            episode_since {integer},
            episode_anomalies {integer} NOT NULL DEFAULT 0,
            episode_open {integer} NOT NULL DEFAULT 0
        )""",
        f"""CREATE TABLE IF NOT EXISTS readings (
            car_id TEXT NOT NULL,
            seq {integer} NOT NULL,
            ts {integer} NOT NULL,
            model TEXT NOT NULL,
            {features},
            failure TEXT,
            PRIMARY KEY (car_id, seq)
        )""",
        f"""CREATE TABLE IF NOT EXISTS anomalies (
            car_id TEXT NOT NULL,
            seq {integer} NOT NULL,
            ts {integer} NOT NULL,
            score {real} NOT NULL,
            threshold {real} NOT NULL,
            model TEXT NOT NULL,
            model_version {integer} NOT NULL,
            top_features TEXT NOT NULL,
            failure TEXT,
            PRIMARY KEY (car_id, seq, model, model_version)
        )""",
        "CREATE INDEX IF NOT EXISTS cars_open ON cars (episode_open)",
        "CREATE INDEX IF NOT EXISTS anomalies_ts ON anomalies (car_id, ts)",
    ]


class TwinStore(ABC):
    """The twin's storage: one implementation per database, the same tables and semantics.

    Open one with `TwinStore.open`. A store is a single connection: use it from one thread at a
    time (the HTTP API serialises its requests). Writers of different cars may share a database
    (one per consumer-group member: cars are partitioned by key).

    (Not ``BaseTwinStore``: callers only ever name this type, and ``TwinStore.open`` reads
    better than a separate factory.)

    Args:
        keep_readings: readings kept per car.
        keep_anomalies: anomaly records kept per car.
        episode_gap_ms: see the module docstring.
    """

    #: Column types of this database.
    integer_type: str = "INTEGER"
    real_type: str = "REAL"

    def __init__(
        self,
        *,
        keep_readings: int = DEFAULT_KEEP_READINGS,
        keep_anomalies: int = DEFAULT_KEEP_ANOMALIES,
        episode_gap_ms: int = DEFAULT_EPISODE_GAP_MS,
    ) -> None:
        if keep_readings < 1 or keep_anomalies < 1 or episode_gap_ms < 0:
            raise ConfigError("keep_readings and keep_anomalies >= 1, episode_gap_ms >= 0")
        self.keep_readings = keep_readings
        self.keep_anomalies = keep_anomalies
        self.episode_gap_ms = episode_gap_ms

    # ---- opening -------------------------------------------------------------------------------

    @staticmethod
    def open(url: str, **options: Any) -> TwinStore:
        """Open (and create when missing) the twin at ``url``.

        Args:
            url: ``sqlite:///relative/path``, ``sqlite:////absolute/path``,
                ``sqlite:///:memory:``, a plain file path (SQLite), or
                ``postgresql://user:password@host:port/db`` (also ``postgres://``).
            **options: `TwinStore` arguments (``keep_readings``, ...).

        Raises:
            ConfigError: an unknown URL scheme.
            TwinError: the database cannot be opened or holds another schema version.
        """
        if url.startswith(("postgresql://", "postgres://")):
            from lakeless.twin._postgres import PostgresTwinStore

            return PostgresTwinStore(url, **options)
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
        elif "://" in url:
            raise ConfigError(f"twin database URL must be sqlite:/// or postgresql://, got {url!r}")
        else:
            path = url
        if not path:
            raise ConfigError(f"no SQLite path in {url!r}")
        from lakeless.twin._sqlite import SqliteTwinStore

        return SqliteTwinStore(path if path == ":memory:" else Path(path), **options)

    def _create_schema(self) -> None:
        with self._transaction():
            for statement in _ddl(self.integer_type, self.real_type):
                self._execute(statement)
            rows = self._query("SELECT value FROM twin_meta WHERE key = 'schema_version'")
            if not rows:
                self._execute(
                    "INSERT INTO twin_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif rows[0][0] != str(SCHEMA_VERSION):
                raise TwinError(
                    f"twin database has schema version {rows[0][0]}, this lakeless uses "
                    f"{SCHEMA_VERSION}: use another database or drop its tables"
                )

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
        """Insert ``rows`` (``ON CONFLICT DO NOTHING``); return how many were new.

        Args:
            table: the table.
            columns: its columns, comma-separated, in row order.
            types: the columns' PostgreSQL types (for databases that send columns as arrays).
            rows: the rows.
        """
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

    def _touched(self) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Called once ``twin_touched`` holds the batch's cars (PostgreSQL analyzes it)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def __enter__(self) -> TwinStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- writing -------------------------------------------------------------------------------

    def apply(self, readings: CleanBatch, anomalies: Sequence[Anomaly]) -> ApplyResult:
        """Apply a batch of readings and anomaly records in one transaction.

        Applying the same records again, in any split into batches and any order, leaves the
        tables unchanged (see the module docstring for the one exception: events older than a
        car's retained window are ignored).

        Raises:
            TwinError: the database refused the batch (nothing of it is stored).
        """
        if not len(readings) and not anomalies:
            return ApplyResult(0, 0, 0)
        reading_rows = _reading_rows(readings)
        anomaly_rows = [_anomaly_row(a) for a in anomalies]
        cars = sorted({row[0] for row in reading_rows} | {a.car_id for a in anomalies})
        try:
            with self._transaction():
                self._insert("twin_touched", "car_id", ["text"], [(c,) for c in cars])
                self._touched()
                self._execute(
                    "INSERT INTO cars (car_id) SELECT car_id FROM twin_touched WHERE true "
                    "ON CONFLICT (car_id) DO NOTHING"
                )
                new_readings = self._apply_readings(reading_rows)
                new_anomalies = self._apply_anomalies(anomaly_rows)
                self._update_episodes(sorted({a.car_id for a in anomalies}))
                self._execute("DELETE FROM twin_touched")
        except LakelessError:
            raise
        except Exception as exc:  # the driver's own error types differ per database
            raise TwinError(f"twin database refused a batch: {exc}") from exc
        return ApplyResult(len(cars), new_readings, new_anomalies)

    def _apply_readings(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        inserted = self._insert("readings", _READING_COLS, _READING_TYPES, rows)
        latest: dict[str, tuple[Any, ...]] = {}
        for row in rows:
            best = latest.get(row[0])
            if best is None or row[1] > best[1]:
                latest[row[0]] = row
        assignments = ", ".join(
            f"{c} = ?" for c in ("last_seq", "last_ts", "model", *FEATURES, "failure")
        )
        # Only forward: an older or replayed reading never overwrites a newer one.
        self._executemany(
            f"UPDATE cars SET {assignments} "
            "WHERE car_id = ? AND (last_seq IS NULL OR last_seq < ?)",
            [(*row[1:], row[0], row[1]) for row in latest.values()],
        )
        stale = self._prune("readings", "readings", "events", self.keep_readings)
        return inserted - stale

    def _apply_anomalies(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        inserted = self._insert("anomalies", _ANOMALY_COLS, _ANOMALY_TYPES, rows)
        latest: dict[str, tuple[Any, ...]] = {}
        for row in rows:
            best = latest.get(row[0])
            if best is None or (row[1], row[6], row[5]) > (best[1], best[6], best[5]):
                latest[row[0]] = row
        self._executemany(
            "UPDATE cars SET last_anomaly_seq = ?, last_anomaly_ts = ?, last_anomaly_score = ?, "
            "last_anomaly_threshold = ?, last_anomaly_model = ?, last_anomaly_version = ?, "
            "last_anomaly_failure = ? WHERE car_id = ? AND (last_anomaly_seq IS NULL "
            "OR (?, ?, ?) > (last_anomaly_seq, last_anomaly_version, last_anomaly_model))",
            [
                (r[1], r[2], r[3], r[4], r[5], r[6], r[8], r[0], r[1], r[6], r[5])
                for r in latest.values()
            ],
        )
        stale = self._prune("anomalies", "anomalies", "anomalies", self.keep_anomalies)
        return inserted - stale

    def _prune(self, table: str, prefix: str, count: str, keep: int) -> int:
        """Keep the newest ``keep`` seqs of every touched car; recompute its count.

        Returns:
            Rows just inserted below a car's previous floor (replays; deleted uncounted).
        """
        below_floor = (
            f"DELETE FROM {table} WHERE car_id IN {_TOUCHED} AND seq < "
            f"(SELECT c.{prefix}_floor FROM cars c WHERE c.car_id = {table}.car_id)"
        )
        stale = self._execute(below_floor)
        rows = f"FROM {table} t WHERE t.car_id = cars.car_id"
        self._execute(
            f"UPDATE cars SET {prefix}_floor = "
            f"(SELECT t.seq {rows} ORDER BY t.seq DESC LIMIT 1 OFFSET ?) "
            f"WHERE car_id IN {_TOUCHED} AND (SELECT COUNT(*) {rows}) > ?",
            (keep - 1, keep),
        )
        self._execute(
            f"UPDATE cars SET {prefix}_pruned = {prefix}_pruned + "
            f"(SELECT COUNT(*) {rows} AND t.seq < cars.{prefix}_floor) "
            f"WHERE car_id IN {_TOUCHED} AND {prefix}_floor IS NOT NULL"
        )
        self._execute(below_floor)
        self._execute(
            f"UPDATE cars SET {count} = {prefix}_pruned + (SELECT COUNT(*) {rows}) "
            f"WHERE car_id IN {_TOUCHED}"
        )
        return stale

    def _update_episodes(self, anomalous: list[str]) -> None:
        gap = self.episode_gap_ms
        # The episode start only moves when a car's anomalies change: walk back from its newest
        # anomaly until a gap wider than `gap` (usually a few rows).
        for car_id in anomalous:
            state = self._query(
                "SELECT episode_since, anomalies_pruned FROM cars WHERE car_id = ?", (car_id,)
            )
            old_since, pruned = state[0]
            times = [
                row[0]
                for row in self._query(
                    "SELECT ts FROM anomalies WHERE car_id = ? ORDER BY ts DESC", (car_id,)
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
                "UPDATE cars SET episode_since = ?, episode_anomalies = ? WHERE car_id = ?",
                (since, count, car_id),
            )
        self._execute(
            "UPDATE cars SET episode_open = CASE WHEN last_anomaly_ts IS NOT NULL AND "
            "(last_ts IS NULL OR last_ts - last_anomaly_ts <= ?) THEN 1 ELSE 0 END "
            f"WHERE car_id IN {_TOUCHED}",
            (gap,),
        )

    # ---- reading -------------------------------------------------------------------------------

    def car(self, car_id: str) -> CarState | None:
        """The state of one car (``None``: never seen)."""
        rows = self._columns("SELECT * FROM cars WHERE car_id = ?", (car_id,))
        return _car_state(rows[0]) if rows else None

    def fleet(self) -> list[CarState]:
        """Every car, ordered by id."""
        return [_car_state(r) for r in self._columns("SELECT * FROM cars ORDER BY car_id")]

    def open_anomalies(self) -> list[CarState]:
        """Cars in an open failure episode, the longest-running episode first."""
        rows = self._columns(
            "SELECT * FROM cars WHERE episode_open = 1 ORDER BY episode_since, car_id"
        )
        return [_car_state(r) for r in rows]

    def recent_readings(self, car_id: str, limit: int = 100) -> list[Reading]:
        """The car's last ``limit`` retained readings, oldest first."""
        rows = self._columns(
            f"SELECT {_READING_COLS} FROM readings WHERE car_id = ? ORDER BY seq DESC LIMIT ?",
            (car_id, limit),
        )
        return [_reading(r) for r in reversed(rows)]

    def recent_anomalies(self, car_id: str, limit: int = 100) -> list[AnomalyRow]:
        """The car's last ``limit`` retained anomaly records, oldest first."""
        rows = self._columns(
            f"SELECT {_ANOMALY_COLS} FROM anomalies WHERE car_id = ? "
            "ORDER BY seq DESC, model_version DESC, model DESC LIMIT ?",
            (car_id, limit),
        )
        return [_anomaly(r) for r in reversed(rows)]

    def counts(self) -> dict[str, int]:
        """Cars, cars in an open episode, events and anomaly records over the fleet."""
        (row,) = self._query(
            "SELECT COUNT(*), COALESCE(SUM(episode_open), 0), COALESCE(SUM(events), 0), "
            "COALESCE(SUM(anomalies), 0) FROM cars"
        )
        return {
            "cars": int(row[0]),
            "open_episodes": int(row[1]),
            "events": int(row[2]),
            "anomalies": int(row[3]),
        }

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, in key order: equal snapshots mean equal twins."""
        with self._transaction(write=False):
            return {
                "cars": self._columns("SELECT * FROM cars ORDER BY car_id"),
                "readings": self._columns(
                    f"SELECT {_READING_COLS} FROM readings ORDER BY car_id, seq"
                ),
                "anomalies": self._columns(
                    f"SELECT {_ANOMALY_COLS} FROM anomalies "
                    "ORDER BY car_id, seq, model, model_version"
                ),
            }


# ---- rows <-> records ------------------------------------------------------------------------


def _reading_rows(batch: CleanBatch) -> list[tuple[Any, ...]]:
    if not len(batch):
        return []
    numeric = batch.numeric.tolist()  # (ts, seq, *features) as Python ints and floats
    return [
        (car_id, values[1], values[0], model, *values[2:], failure)
        for car_id, model, failure, values in zip(
            batch.car_id, batch.model, batch.failure, numeric, strict=True
        )
    ]


def _anomaly_row(a: Anomaly) -> tuple[Any, ...]:
    top = json.dumps(
        [{"name": t.name, "value": t.value, "error": t.error} for t in a.top_features],
        separators=(",", ":"),
    )
    return (a.car_id, a.seq, a.ts, a.score, a.threshold, a.model, a.model_version, top, a.failure)


def _car_state(row: dict[str, Any]) -> CarState:
    last = None
    if row["last_anomaly_seq"] is not None:
        last = LastAnomaly(
            seq=row["last_anomaly_seq"],
            ts=row["last_anomaly_ts"],
            score=row["last_anomaly_score"],
            threshold=row["last_anomaly_threshold"],
            model=row["last_anomaly_model"],
            model_version=row["last_anomaly_version"],
            failure=row["last_anomaly_failure"],
        )
    has_reading = row["last_seq"] is not None
    return CarState(
        car_id=row["car_id"],
        model=row["model"],
        last_seq=row["last_seq"],
        last_ts=row["last_ts"],
        failure=row["failure"],
        features={name: row[name] for name in FEATURES} if has_reading else None,
        events=int(row["events"]),
        anomalies=int(row["anomalies"]),
        last_anomaly=last,
        episode_open=bool(row["episode_open"]),
        episode_since=row["episode_since"],
        episode_anomalies=int(row["episode_anomalies"]),
    )


def _reading(row: dict[str, Any]) -> Reading:
    return Reading(
        car_id=row["car_id"],
        seq=row["seq"],
        ts=row["ts"],
        model=row["model"],
        failure=row["failure"],
        features={name: row[name] for name in FEATURES},
    )


def _anomaly(row: dict[str, Any]) -> AnomalyRow:
    return AnomalyRow(
        car_id=row["car_id"],
        seq=row["seq"],
        ts=row["ts"],
        score=row["score"],
        threshold=row["threshold"],
        model=row["model"],
        model_version=row["model_version"],
        top_features=json.loads(row["top_features"]),
        failure=row["failure"],
    )
