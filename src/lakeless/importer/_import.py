"""Reading a CSV or JSON-lines file and producing its records (see `lakeless.importer`)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import msgspec
from confluent_kafka import KafkaException, TopicPartition

from lakeless.config import Settings
from lakeless.errors import ConfigError, KafkaError, LakelessError
from lakeless.importer._settings import ImportSettings
from lakeless.kafka import make_consumer, make_producer, produce_waiting
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.pipeline import Pipeline
from lakeless.schema import PipelineSchema

__all__ = [
    "CsvMapping",
    "ImportFileError",
    "ImportStats",
    "count_records",
    "csv_events",
    "import_file",
]

logger = logging.getLogger(__name__)

_SECONDS_BELOW = 10**11  # 10^11 ms is 1973; 10^11 s is year 5138


class ImportFileError(LakelessError):
    """The input file cannot be read."""


@dataclass(frozen=True)
class CsvMapping:
    """How CSV rows become events of ``schema`` (see the module docstring).

    Raises:
        ConfigError: ``scale`` names a field that is not a numeric field of the schema.
    """

    schema: PipelineSchema
    time_unit: Literal["auto", "s", "ms"] = "auto"
    scale: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        numeric = {f.name for f in self.schema.fields if f.numeric}
        for name in self.scale:
            if name not in numeric:
                raise ConfigError(
                    f"--scale {name}=...: {name!r} is not a numeric field of the schema "
                    f"(numeric fields: {', '.join(sorted(numeric))})"
                )

    def column_names(self) -> dict[str, str]:
        """CSV column -> field: every field by its name and by its aliases."""
        names = {alias: f.name for f in self.schema.fields for alias in f.aliases}
        names.update({f.name: f.name for f in self.schema.fields})
        return names


@dataclass
class ImportStats:
    """What an import did; ``produced`` records are acknowledged by Kafka.

    Attributes:
        older: acknowledged records whose event time is older than the newest record their
            partition held before the import (a time window cannot find them reliably).
        older_range: the earliest and latest of those times (ms), if any.
        newest_before: the newest event time the topic held before the import (ms), if any.
    """

    read: int = 0
    produced: int = 0
    failed: int = 0
    older: int = 0
    older_range: tuple[int, int] | None = None
    newest_before: int | None = None
    seconds: float = 0.0
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``--stats-json`` form."""
        return dataclasses.asdict(self)

    def older_warning(self, topic: str) -> str | None:
        """What a user must know when `older` records were written, else ``None``."""
        if not self.older or self.older_range is None or self.newest_before is None:
            return None
        low, high = (_iso(t) for t in self.older_range)
        return (
            f"{self.older} of {self.produced} imported records (event times {low} .. {high}) "
            f"are older than records {topic} already held (up to {_iso(self.newest_before)}): "
            "Kafka finds a time window's start by offsets-for-times, which assumes times rise "
            "within a partition, so `train --start/--end/--last` windows over these times can "
            "miss them. Train on them on the whole topic (no window) or by offsets (`train "
            "--offsets`), or import history into a topic of its own before live data."
        )


def _number(text: str, kind: type[int] | type[float]) -> int | float | str:
    try:
        return kind(text)
    except ValueError:
        if kind is int:
            try:
                as_float = float(text)
            except ValueError:
                return text
            return int(as_float) if as_float.is_integer() else text
        return text


def csv_events(rows: Iterable[dict[str, str]], mapping: CsvMapping) -> Iterator[dict[str, Any]]:
    """Turn CSV rows (as from `csv.DictReader`) into event dicts in the schema's field names."""
    schema = mapping.schema
    columns = mapping.column_names()
    integer = {f.name for f in schema.fields if f.integer}
    floating = {f.name for f in schema.fields if f.numeric and not f.integer}
    nullable = {f.name for f in schema.fields if f.nullable}
    key, time_field, sequence = schema.key, schema.time, schema.sequence
    counters: dict[str, int] = defaultdict(int)
    for row in rows:
        event: dict[str, Any] = {}
        for column, text in row.items():
            if column is None:  # more cells than header columns
                event.setdefault("_extra_cells", text)
                continue
            name = columns.get(column.strip(), column.strip())
            if text is None or text.strip() == "":
                continue  # missing stays missing: preprocess reports missing_field
            text = text.strip()
            if name in integer:
                value: Any = _number(text, int)
                if name == time_field and isinstance(value, int):
                    unit = mapping.time_unit
                    if unit == "s" or (unit == "auto" and abs(value) < _SECONDS_BELOW):
                        value *= 1000
            elif name in floating:
                value = _number(text, float)
                if name in mapping.scale and isinstance(value, float):
                    value *= mapping.scale[name]
            elif name in nullable and text.lower() in ("null", "none"):
                value = None
            else:
                value = text
            event[name] = value
        entity = event.get(key)
        if sequence is not None and sequence not in event and isinstance(entity, str):
            event[sequence] = counters[entity]
            counters[entity] += 1
        yield event


_encoder = msgspec.json.Encoder()


def _open(path: Path) -> IO[str]:
    if not path.exists():
        raise ImportFileError(f"no such file: {path}")
    if path.is_dir():
        raise ImportFileError(f"{path} is a directory: give a .csv or .jsonl file")
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from exc


def _records(path: Path, mapping: CsvMapping) -> Iterator[tuple[bytes | None, bytes, int]]:
    """(key, value, timestamp ms or 0) for every record of ``path``."""
    name = path.name.removesuffix(".gz")
    schema = mapping.schema
    meta_type = msgspec.defstruct(
        "KeyAndTime",
        [("key", Any, None), ("time", Any, None)],
        rename={"key": schema.key, "time": schema.time},
    )
    meta_decoder: Any = msgspec.json.Decoder(meta_type)
    try:
        with _open(path) as handle:
            if name.endswith(".csv"):
                reader = csv.DictReader(handle)
                _check_header(path, reader.fieldnames, mapping)
                for event in csv_events(reader, mapping):
                    entity, ts = event.get(schema.key), event.get(schema.time)
                    key = entity.encode() if isinstance(entity, str) else None
                    yield key, _encoder.encode(event), ts if isinstance(ts, int) and ts > 0 else 0
            elif name.endswith((".jsonl", ".ndjson", ".json")):
                for line in handle:
                    if not line.strip():
                        continue
                    raw = line.rstrip("\r\n").encode()
                    try:
                        meta: Any = meta_decoder.decode(raw)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        meta = meta_type()
                    key = meta.key.encode() if isinstance(meta.key, str) else None
                    ts = meta.time if isinstance(meta.time, int) and 0 < meta.time < 2**63 else 0
                    yield key, raw, ts
            else:
                raise ImportFileError(f"{path}: expected a .csv or .jsonl file (optionally .gz)")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path} is not UTF-8 text (byte {exc.start}): give a .csv or .jsonl file"
        ) from None
    except (OSError, EOFError, csv.Error) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from exc


def _check_header(path: Path, header: Sequence[str] | None, mapping: CsvMapping) -> None:
    if not header:
        raise ImportFileError(f"{path} is empty: no CSV header")
    names = mapping.column_names()
    if not any(column.strip() in names for column in header):
        fields = ", ".join(mapping.schema.field_names[:8])
        raise ImportFileError(
            f"no column of {path} names a field of the schema {mapping.schema.name} "
            f"(columns: {', '.join(header[:8])}; fields: {fields}, ...)"
        )


def count_records(path: Path) -> int:
    """Records in ``path`` (lines, less a CSV header), for a progress bar.

    Raises:
        ImportFileError: the file cannot be read as text.
    """
    try:
        with _open(path) as handle:
            lines = sum(1 for line in handle if line.strip())
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path} is not UTF-8 text (byte {exc.start}): give a .csv or .jsonl file"
        ) from None
    except (OSError, EOFError) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from exc
    csv_file = path.name.removesuffix(".gz").endswith(".csv")
    return max(0, lines - 1) if csv_file else lines


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _newest_times(settings: Settings, topic: str) -> dict[int, int]:
    """The event time of the last record of every non-empty partition of ``topic``."""
    consumer = make_consumer(settings.kafka, "lakeless-import-check")
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return {}
        last = []
        for partition in described.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high > low:
                last.append(TopicPartition(topic, partition, high - 1))
        newest: dict[int, int] = {}
        if not last:
            return newest
        consumer.assign(last)
        deadline = time.monotonic() + 10
        while len(newest) < len(last) and time.monotonic() < deadline:
            for message in consumer.consume(len(last), 0.5):
                if message.error() is None:
                    newest[message.partition()] = message.timestamp()[1]
        return newest
    except KafkaException as exc:
        logger.debug("cannot read the newest times of %s: %s", topic, exc)
        return {}
    finally:
        consumer.close()


def import_file(
    path: Path,
    settings: Settings,
    pipeline: Pipeline | None = None,
    limits: RunLimits | None = None,
    progress: Callable[[int], None] | None = None,
    stats: ImportStats | None = None,
) -> ImportStats:
    """Produce every record of ``path`` to the pipeline's raw topic and wait for Kafka's acks.

    Args:
        path: a ``.csv`` or ``.jsonl`` file, optionally gzipped.
        settings: Kafka connection and ``settings.importer`` (CSV conversions).
        pipeline: the pipeline (default: the built-in car fleet).
        limits: stop early (default: the settings' ``count``/``timeout``; or on SIGTERM).
        progress: called with the number of records read since the last call.
        stats: where to count (a caller can report it after an error); default: a new one.

    Raises:
        ImportFileError: the file is missing or of an unknown kind.
        KafkaError: Kafka did not acknowledge every record.
    """
    pipeline = pipeline or Pipeline.builtin(settings)
    config: ImportSettings = settings.importer
    mapping = CsvMapping(pipeline.schema, config.time_unit, dict(config.scale))
    limits = limits or config.limits()
    stats = stats if stats is not None else ImportStats()
    producer = make_producer(settings.kafka, linger_ms=20, batch_num_messages=10000)
    topic = pipeline.topics.raw

    newest = _newest_times(settings, topic)
    stats.newest_before = max(newest.values(), default=None)
    older_low, older_high = 2**63, -(2**63)

    def delivered(error: Any, msg: Any) -> None:
        nonlocal older_low, older_high
        if error is None:
            stats.produced += 1
            before = newest.get(msg.partition())
            if before is not None:
                _kind, at = msg.timestamp()
                if at < before:
                    stats.older += 1
                    older_low, older_high = min(older_low, at), max(older_high, at)
        else:
            stats.failed += 1
            logger.error("record not written to %s: %s", topic, error)

    started = time.monotonic()
    stopper = Stopper(limits)
    with stop_on_signals(stopper):
        for key, value, timestamp in _records(path, mapping):
            if stopper.done:
                break
            produce_waiting(producer, topic, value, key, timestamp=timestamp, on_delivery=delivered)
            stats.read += 1
            stopper.add(1)
            if stats.read % 1000 == 0:
                producer.poll(0)
                if progress:
                    progress(1000)
        if progress:
            progress(stats.read % 1000)
        stats.stopped_by = stopper.reason
        remaining = producer.flush(120)
    stats.seconds = time.monotonic() - started
    if stats.older:
        stats.older_range = (older_low, older_high)
        logger.warning("%s", stats.older_warning(topic))
    if remaining or stats.failed:
        raise KafkaError(
            f"{stats.failed + remaining} of {stats.read} records were not acknowledged by Kafka"
        )
    return stats
