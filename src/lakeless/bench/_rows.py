"""Simulated car-fleet rows for the benches: as clean records, into a topic, as Parquet.

`encode_rows` and `encode_clean_rows` give whole fleet steps as `lakeless.schema.CleanCodec`
bytes at once; `produce_fleet` fills a topic with them (``bench score`` and ``bench train``
both pre-fill the topic their paths read this way). `ParquetRows` keeps the same rows for the
train suite's data-lake baseline, which `read_parquet_features` reads back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from lakeless.config import KafkaSettings
from lakeless.errors import LakelessError
from lakeless.fleet import FAILURE_MODES, Fleet, FleetBatch
from lakeless.fleet._schema import FEATURES, SCHEMA
from lakeless.kafka import make_producer, produce_waiting
from lakeless.schema import CleanCodec

__all__ = [
    "ParquetRows",
    "encode_clean_rows",
    "encode_rows",
    "produce_fleet",
    "read_parquet_features",
]

logger = logging.getLogger(__name__)

_CODEC: Final = CleanCodec(SCHEMA)
_LABELS: Final[tuple[str | None, ...]] = (*FAILURE_MODES, None)  # failure code -1 -> None


def encode_rows(
    ts: np.ndarray,
    seq: np.ndarray | int,
    values: np.ndarray,
    car_ids: Sequence[str],
    models: Sequence[str],
    failures: Sequence[str | None],
    codec: CleanCodec | None = None,
) -> list[bytes]:
    """Car-fleet clean records for whole columns at once (`lakeless.schema.CleanCodec` bytes).

    Example:
        >>> from lakeless.schema import Decoder
        >>> values = np.arange(18, dtype=np.float64)[None]
        >>> record = encode_rows(np.array([5]), 7, values, ["car-1"], ["m"], [None])[0]
        >>> batch = Decoder(SCHEMA).decode([record])
        >>> speed = values[0, FEATURES.index("speed")]
        >>> batch.key, batch.time.tolist(), bool(batch.numeric["speed"][0] == speed)
        (['car-1'], [5], True)
    """
    codec = codec or _CODEC
    numeric = np.empty(len(ts), codec.dtype)
    numeric["ts"] = ts
    numeric["seq"] = seq
    for j, name in enumerate(FEATURES):
        numeric[name] = values[:, j]
    return codec.encode_columns(numeric, list(zip(car_ids, models, failures, strict=True)))


def encode_clean_rows(batch: FleetBatch, codec: CleanCodec | None = None) -> list[bytes]:
    """Every row of ``batch`` as a clean record, vectorized (`CleanCodec.encode_columns`).

    The same bytes as encoding each of ``batch.events()``, about ten times faster, so a
    million-record topic fills in seconds.

    Example:
        >>> codec = CleanCodec(SCHEMA)
        >>> batch = Fleet(3, seed=1, start=0).step()
        >>> encode_clean_rows(batch, codec) == [codec.encode(e) for e in batch.events()]
        True
    """
    labels = [_LABELS[code] for code in batch.failure.tolist()]
    return encode_rows(
        batch.ts, batch.seq, batch.values, batch.car_ids, batch.models, labels, codec
    )


def produce_fleet(
    kafka: KafkaSettings,
    topic: str,
    count: int,
    *,
    cars: int,
    seed: int,
    timeout: float,
    error: type[LakelessError],
    failure_rate: float = 0.0,
    each: Callable[[FleetBatch, int], None] | None = None,
) -> None:
    """Produce ``count`` simulated clean records into ``topic``, keyed by car id.

    The fleet (``cars``, ``seed``, ``failure_rate``) is stamped up to now, one report per car
    and second, as a fleet would have sent them; each record gets its event time as its
    timestamp. ``each(batch, n)`` is called with every fleet step and the number of its rows
    produced (its first ``n``).

    Raises:
        error: records were not delivered within ``timeout`` seconds of flushing, or failed
            (the message names the first delivery errors).
    """
    started = time.monotonic()
    steps = -(-count // cars)
    start = int(time.time() * 1000) - steps * 1000
    fleet = Fleet(cars, seed=seed, start=start, failure_rate=failure_rate)
    producer = make_producer(
        kafka,
        linger_ms=20,
        queue_buffering_max_messages=2_000_000,
        queue_buffering_max_kbytes=1 << 20,
    )
    failed: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None and len(failed) < 5:
            failed.append(str(err))

    left = count
    while left > 0:
        batch = fleet.step()
        stop = min(left, len(batch))
        if each is not None:
            each(batch, stop)
        values = encode_clean_rows(batch)[:stop]
        for key, value, ts in zip(
            batch.car_ids[:stop], values, batch.ts[:stop].tolist(), strict=True
        ):
            produce_waiting(
                producer, topic, value, key.encode(), timestamp=ts, on_delivery=delivered
            )
        producer.poll(0)
        left -= stop
    remaining = producer.flush(timeout)
    if remaining or failed:
        raise error(f"could not fill {topic} ({remaining} left): {failed}")
    logger.info("filled %s with %d records in %.1fs", topic, count, time.monotonic() - started)


@dataclass
class ParquetRows:
    """The rows of the run, column-wise, as produced (the Parquet file gets exactly these)."""

    car_id: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    failure: list[str | None] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    seq: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: FleetBatch, stop: int) -> None:
        """Keep the first ``stop`` rows of ``batch`` (``produce_fleet``'s ``each``)."""
        self.car_id.extend(batch.car_ids[:stop])
        self.model.extend(batch.models[:stop])
        self.failure.extend(batch.labels(0, stop))
        self.ts.append(batch.ts[:stop])
        self.seq.append(np.full(stop, batch.seq, np.int64))
        self.values.append(batch.values[:stop])

    def write_parquet(self, path: Path) -> int:
        """Write the rows (every `SensorEvent` column) to ``path``; return the file's size."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        values = np.concatenate(self.values)
        columns: dict[str, Any] = {
            "car_id": pa.array(self.car_id, pa.string()),
            "ts": pa.array(np.concatenate(self.ts)),
            "seq": pa.array(np.concatenate(self.seq)),
            "model": pa.array(self.model, pa.string()),
        }
        columns.update({name: pa.array(values[:, j]) for j, name in enumerate(FEATURES)})
        columns["failure"] = pa.array(self.failure, pa.string())
        pq.write_table(pa.table(columns), path)
        return path.stat().st_size


def read_parquet_features(path: Path) -> np.ndarray:
    """The data-lake baseline: the feature columns of a Parquet file as float32 ``(n, 18)``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(FEATURES))
    out = np.empty((table.num_rows, len(FEATURES)), np.float32)
    for j, name in enumerate(FEATURES):
        out[:, j] = table.column(name).to_numpy()
    return out
