"""The twin's records (`EntityState`, `Reading`, ...) and their rows in the database.

`DocumentEncoder` turns a batch of clean readings into rows whose reading is one JSON document
by the schema's field names; the functions below turn table rows back into records (a JSON
column arrives as text from SQLite and decoded from PostgreSQL's JSONB).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np

from lakeless._mixins import AsDict
from lakeless.errors import LakelessError
from lakeless.schema import CleanBatch, PipelineSchema
from lakeless.schema.outputs import AnomalyRecord

__all__ = [
    "AnomalyRow",
    "ApplyResult",
    "DocumentEncoder",
    "EntityState",
    "LastAnomaly",
    "Reading",
    "TwinError",
    "anomaly_row",
    "entity_state",
    "normal",
    "retained_anomaly",
    "retained_reading",
]

_encode_lines: Final = msgspec.json.Encoder().encode_lines


class TwinError(LakelessError):
    """The twin's database cannot be opened, holds another layout version, or failed."""


@dataclass(frozen=True)
class LastAnomaly:
    """The most recent anomaly of an entity (highest position, then model version)."""

    position: int
    time: int
    score: float
    threshold: float
    model: str
    model_version: int
    label: str | None


@dataclass(frozen=True)
class EntityState(AsDict):
    """What the twin knows about one entity.

    Attributes:
        key: the entity id.
        last_position: position (sequence, or time) of the latest reading.
        last_time: event time of the latest reading, ms since the epoch.
        label: ground-truth label of the latest reading, when labelled.
        reading: the latest reading's fields by name (``None`` before any reading).
        events: distinct readings received (keyed by position).
        anomalies: distinct anomaly records received (one per event and model version).
        last_anomaly: the most recent anomaly.
        episode_open: whether the entity is in a failure episode now (event time).
        episode_since: event time of the first anomaly of the latest episode.
        episode_anomalies: anomalies in the latest episode (among the retained ones).
    """

    key: str
    last_position: int | None
    last_time: int | None
    label: str | None
    reading: dict[str, Any] | None
    events: int
    anomalies: int
    last_anomaly: LastAnomaly | None
    episode_open: bool
    episode_since: int | None
    episode_anomalies: int


@dataclass(frozen=True)
class Reading(AsDict):
    """One retained reading of an entity: its fields by name."""

    key: str
    position: int
    time: int
    label: str | None
    reading: dict[str, Any]


@dataclass(frozen=True)
class AnomalyRow(AsDict):
    """One retained anomaly record of an entity (see `lakeless.schema.outputs`)."""

    key: str
    position: int
    time: int
    score: float
    threshold: float
    model: str
    model_version: int
    top_features: list[dict[str, Any]]
    label: str | None


@dataclass(frozen=True)
class ApplyResult:
    """What one `TwinStore.apply` changed.

    Attributes:
        entities: entities touched by the batch.
        new_readings: readings stored for the first time (replays and stale ones excluded).
        new_anomalies: anomaly records stored for the first time.
    """

    entities: int
    new_readings: int
    new_anomalies: int


class DocumentEncoder:
    """Rows ``(entity, position, time, reading JSON, label)`` of a batch of clean readings.

    Column-wise: one numpy conversion per field (integers and booleans back to their own
    types), one generated struct per reading, and one C call that encodes them all as JSON
    lines (compact JSON never holds a raw newline: it is escaped inside strings).

    Args:
        schema: the pipeline's schema.

    Example:
        >>> from lakeless.examples import example_schema
        >>> from lakeless.testing.events import decode_clean, encode_clean, example_event
        >>> pumps = example_schema("pumps")
        >>> batch = decode_clean([encode_clean(example_event(pumps), pumps)], pumps)
        >>> entity, position, time, document, label = DocumentEncoder(pumps).rows(batch)[0]
        >>> position == time, json.loads(document)["speed_rpm"], label
        (True, 2950, None)
    """

    def __init__(self, schema: PipelineSchema) -> None:
        self.schema = schema
        #: The fields a reading document holds (what the clean record carries), in schema order.
        self.fields = [n for n in schema.field_names if n not in schema.ignored]
        self._type = _document_type(schema)
        #: numpy types that give a field back its own Python type (clean numbers are float64).
        self._kinds: dict[str, type] = {
            spec.name: bool if spec.type == "boolean" else np.int64
            for spec in schema.features
            if spec.integer or spec.type == "boolean"
        }

    def rows(self, batch: CleanBatch) -> list[tuple[Any, ...]]:
        """One row per reading of ``batch``."""
        if not len(batch):
            return []
        schema = self.schema
        columns = [self._column(batch, name) for name in self.fields]
        docs = _encode_lines(list(map(self._type, *columns))).decode().split("\n")
        docs.pop()  # after the last newline
        keys = batch.key
        times = batch.time.tolist()
        positions = times if schema.sequence is None else batch.numeric[schema.sequence].tolist()
        labels = batch.strings[schema.label] if schema.label else [None] * len(keys)
        return list(zip(keys, positions, times, docs, labels, strict=True))

    def _column(self, batch: CleanBatch, name: str) -> list[Any]:
        if name in batch.strings:
            return batch.strings[name]
        values = batch.numeric[name]
        kind = self._kinds.get(name)
        if kind is not None:
            values = values.astype(kind)
        result: list[Any] = values.tolist()
        return result


@functools.cache
def _document_type(schema: PipelineSchema) -> type[msgspec.Struct]:
    """A struct of the fields a reading document holds, in schema order (never validated)."""
    fields = [n for n in schema.field_names if n not in schema.ignored]
    return msgspec.defstruct("TwinReading", [(n, Any) for n in fields], array_like=False)


def anomaly_row(a: AnomalyRecord) -> tuple[Any, ...]:
    """The row of an anomaly record (its position: the sequence, else the time)."""
    top = json.dumps(
        [{"name": t.name, "value": t.value, "error": t.error} for t in a.top_features],
        separators=(",", ":"),
    )
    position = a.sequence if a.sequence is not None else a.time
    return (a.key, position, a.time, a.score, a.threshold, a.model, a.model_version, top, a.label)


def _document(value: Any) -> Any:
    """A JSON column's value as Python (PostgreSQL's JSONB arrives decoded already)."""
    return json.loads(value) if isinstance(value, str) else value


def normal(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its JSON document decoded (so SQLite and PostgreSQL compare equal)."""
    if row.get("reading") is not None:
        row = {**row, "reading": _document(row["reading"])}
    return row


def entity_state(row: dict[str, Any]) -> EntityState:
    """An entity row as its state."""
    last = None
    if row["last_anomaly_position"] is not None:
        last = LastAnomaly(
            position=row["last_anomaly_position"],
            time=row["last_anomaly_time"],
            score=row["last_anomaly_score"],
            threshold=row["last_anomaly_threshold"],
            model=row["last_anomaly_model"],
            model_version=row["last_anomaly_version"],
            label=row["last_anomaly_label"],
        )
    reading = row["reading"]
    return EntityState(
        key=row["entity"],
        last_position=row["last_position"],
        last_time=row["last_time"],
        label=row["label"],
        reading=_document(reading) if reading is not None else None,
        events=int(row["events"]),
        anomalies=int(row["anomalies"]),
        last_anomaly=last,
        episode_open=bool(row["episode_open"]),
        episode_since=row["episode_since"],
        episode_anomalies=int(row["episode_anomalies"]),
    )


def retained_reading(row: dict[str, Any]) -> Reading:
    """A reading row as a record."""
    return Reading(
        key=row["entity"],
        position=row["position"],
        time=row["time"],
        label=row["label"],
        reading=_document(row["reading"]),
    )


def retained_anomaly(row: dict[str, Any]) -> AnomalyRow:
    """An anomaly row as a record."""
    return AnomalyRow(
        key=row["entity"],
        position=row["position"],
        time=row["time"],
        score=row["score"],
        threshold=row["threshold"],
        model=row["model"],
        model_version=row["model_version"],
        top_features=json.loads(row["top_features"]),
        label=row["label"],
    )
