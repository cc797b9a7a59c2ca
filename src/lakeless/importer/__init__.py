"""``lakeless import``: replay recorded sensor data (CSV or JSON lines) into ``sensor-raw``.

Each record keeps its original event time as the Kafka record timestamp and is keyed by car id,
exactly as if the car had sent it through the bridge. The importer maps and converts, it does not
judge: a value that is not a number stays a string and a missing cell stays missing, so that
``preprocess`` dead-letters the record with its reason instead of the importer dropping it.

CSV mapping:
    - columns named like `SensorEvent` fields are taken as they are; ``car`` is ``car_id`` and
      ``time``/``timestamp`` are ``ts``;
    - times below 10^11 are seconds (unix time), larger ones milliseconds (``time_unit="auto"``);
    - a missing ``seq`` is numbered per car in file order, a missing ``model`` is
      ``default_model``;
    - ``scale`` multiplies fields, e.g. ``{"battery_percentage": 100}`` for data recorded as a
      0-1 fraction (the talk's recorded CSV).

JSON lines are forwarded byte-for-byte (one event per line); only ``car_id`` and ``ts`` are read,
for the key and the timestamp.

Example:
    >>> rows = [{"time": "1567606196", "car": "car1", "speed": "24.9"}]
    >>> list(csv_events(rows, CsvMapping()))[0]
    {'ts': 1567606196000, 'car_id': 'car1', 'speed': 24.9, 'seq': 0, 'model': 'unknown'}
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from lakeless.config import Settings
from lakeless.errors import KafkaError, LakelessError
from lakeless.kafka import make_producer
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.schema import FEATURES

__all__ = [
    "CsvMapping",
    "ImportFileError",
    "ImportStats",
    "count_records",
    "csv_events",
    "import_file",
]

logger = logging.getLogger(__name__)

_ALIASES = {"car": "car_id", "time": "ts", "timestamp": "ts"}
_INT_FIELDS = {"ts", "seq"}
_FLOAT_FIELDS = set(FEATURES)
_SECONDS_BELOW = 10**11  # 10^11 ms is 1973; 10^11 s is year 5138


class ImportFileError(LakelessError):
    """The input file cannot be read."""


@dataclass(frozen=True)
class CsvMapping:
    """How CSV rows become sensor events (see the module docstring)."""

    time_unit: Literal["auto", "s", "ms"] = "auto"
    default_model: str = "unknown"
    scale: dict[str, float] = field(default_factory=dict)


@dataclass
class ImportStats:
    """What an import did; ``produced`` records are acknowledged by Kafka."""

    read: int = 0
    produced: int = 0
    failed: int = 0
    stopped_by: str | None = None


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
    seq_by_car: dict[str, int] = defaultdict(int)
    for row in rows:
        event: dict[str, Any] = {}
        for column, text in row.items():
            if column is None:  # more cells than header columns
                event.setdefault("_extra_cells", text)
                continue
            name = _ALIASES.get(column.strip(), column.strip())
            if text is None or text.strip() == "":
                continue  # missing stays missing: preprocess reports missing_field
            text = text.strip()
            if name in _INT_FIELDS:
                value: Any = _number(text, int)
                if name == "ts" and isinstance(value, int):
                    unit = mapping.time_unit
                    if unit == "s" or (unit == "auto" and abs(value) < _SECONDS_BELOW):
                        value *= 1000
            elif name in _FLOAT_FIELDS:
                value = _number(text, float)
                if name in mapping.scale and isinstance(value, float):
                    value *= mapping.scale[name]
            elif name == "failure" and text.lower() in ("null", "none"):
                value = None
            else:
                value = text
            event[name] = value
        car_id = event.get("car_id")
        if "seq" not in event and isinstance(car_id, str):
            event["seq"] = seq_by_car[car_id]
            seq_by_car[car_id] += 1
        event.setdefault("model", mapping.default_model)
        yield event


class _KeyTs(msgspec.Struct):
    car_id: Any = None
    ts: Any = None


_key_ts_decoder = msgspec.json.Decoder(_KeyTs)
_encoder = msgspec.json.Encoder()


def _open(path: Path) -> IO[str]:
    if not path.exists():
        raise ImportFileError(f"no such file: {path}")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _records(path: Path, mapping: CsvMapping) -> Iterator[tuple[bytes | None, bytes, int]]:
    """(key, value, timestamp ms or 0) for every record of ``path``."""
    name = path.name.removesuffix(".gz")
    with _open(path) as handle:
        if name.endswith(".csv"):
            for event in csv_events(csv.DictReader(handle), mapping):
                car_id, ts = event.get("car_id"), event.get("ts")
                key = car_id.encode() if isinstance(car_id, str) else None
                yield key, _encoder.encode(event), ts if isinstance(ts, int) and ts > 0 else 0
        elif name.endswith((".jsonl", ".ndjson", ".json")):
            for line in handle:
                if not line.strip():
                    continue
                raw = line.rstrip("\r\n").encode()
                try:
                    meta = _key_ts_decoder.decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    meta = _KeyTs()
                key = meta.car_id.encode() if isinstance(meta.car_id, str) else None
                ts = meta.ts if isinstance(meta.ts, int) and 0 < meta.ts < 2**63 else 0
                yield key, raw, ts
        else:
            raise ImportFileError(f"{path}: expected a .csv or .jsonl file (optionally .gz)")


def count_records(path: Path) -> int:
    """Records in ``path`` (lines, less a CSV header), for a progress bar."""
    with _open(path) as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if path.name.removesuffix(".gz").endswith(".csv") else lines


def import_file(
    path: Path,
    settings: Settings,
    mapping: CsvMapping | None = None,
    limits: RunLimits | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportStats:
    """Produce every record of ``path`` to ``settings.topics.raw`` and wait for Kafka's acks.

    Args:
        path: a ``.csv`` or ``.jsonl`` file, optionally gzipped.
        settings: Kafka connection and topic names.
        mapping: CSV conversions.
        limits: stop early after ``count`` records or ``timeout`` seconds (or on SIGTERM).
        progress: called with the number of records read since the last call.

    Raises:
        ImportFileError: the file is missing or of an unknown kind.
        KafkaError: Kafka did not acknowledge every record.
    """
    mapping = mapping or CsvMapping()
    stats = ImportStats()
    producer = make_producer(settings.kafka, linger_ms=20, batch_num_messages=10000)
    topic = settings.topics.raw

    def delivered(error: Any, _msg: Any) -> None:
        if error is None:
            stats.produced += 1
        else:
            stats.failed += 1
            logger.error("record not written to %s: %s", topic, error)

    stopper = Stopper(limits)
    with stop_on_signals(stopper):
        for key, value, timestamp in _records(path, mapping):
            if stopper.done:
                break
            while True:
                try:
                    producer.produce(topic, value, key, timestamp=timestamp, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
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
    if remaining or stats.failed:
        raise KafkaError(
            f"{stats.failed + remaining} of {stats.read} records were not acknowledged by Kafka"
        )
    return stats
