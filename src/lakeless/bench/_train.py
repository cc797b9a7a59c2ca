"""The training benchmark: reading and training straight from Kafka against a data lake.

Every path is measured in one run, on one machine, on the same rows: simulated ``sensor-clean``
records (at least a million by default) produced once into a fresh topic of a Kafka broker (by
default a throwaway one on free ports, always stopped after the run), and the same rows written
once to a local Parquet file before anything is timed:

``reader->numpy``
    `lakeless.dataset.KafkaDataset` (cache off, so Kafka is really read) resolving the whole
    topic and returning its ``features()`` matrix, float32 ``(rows, 18)``.
``reader->tf.data``
    One epoch of ``KafkaDataset.to_tf_dataset`` (cache off, shuffled, ``(x, x)`` pairs at the
    training batch size) iterated to the end.
``parquet->numpy``
    The data-lake baseline: the Parquet file (pyarrow, snappy, written before timing and
    therefore in the page cache, as the topic's segments are) read into the same float32
    matrix.
``tensorflow-io``
    The talk's method: tensorflow-io's ``KafkaGroupIODataset`` consuming the same topic in a
    fresh consumer group and decoding every record inside ``tf.data`` as favourably as it
    allows (see ``lakeless.bench._tfio_reader``). tensorflow-io 0.37.1 installs only beside
    TensorFlow 2.16, so it runs as a subprocess in a virtualenv of its own, built on first use
    (`ensure_tfio_venv`; a few minutes, cached under ``~/.cache/lakeless``). Without a network
    that build fails and the result is reported as skipped, with the reason.
``train-from-kafka`` and ``train-from-parquet``
    Wall seconds of ``epochs`` epochs of the same network (the default `Autoencoder`'s layers,
    activation, optimizer, learning rate and batch size; the same initial weights) on the same
    rows, fed from ``KafkaDataset.to_tf_dataset`` (cache off: every epoch reads Kafka again)
    versus from a ``tf.data`` pipeline over the Parquet-loaded array. Both pipelines shuffle
    the same way (blocks of 16,384 rows, shuffled within the block) and standardize inside
    ``tf.data`` with the same constants.

The report carries ratios with their goals: ``reader->tf.data`` and ``reader->numpy`` over
``tensorflow-io`` (goal at least 10x) and ``train-from-kafka`` over ``train-from-parquet`` seconds
(goal at most 1.2). Unmeasured warm-ups absorb one-time costs first (importing TensorFlow,
tracing the first ``tf.data`` and Keras functions). Nothing is asserted about speed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

import confluent_kafka
import numpy as np
from confluent_kafka import TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._ingest import BenchError, _throwaway_kafka
from lakeless.bench._peer import cached_venv, ensure_venv, run_command, run_peer_script
from lakeless.bench._result import BenchReport, BenchResult, machine_info
from lakeless.config import KafkaSettings
from lakeless.dataset import READ_CONFIG, KafkaDataset
from lakeless.dataset._dataset import _TF_BLOCK
from lakeless.fleet import FAILURE_MODES, Fleet, FleetBatch
from lakeless.kafka import TopicSpec, create_topics, make_admin, make_consumer, make_producer
from lakeless.schema import CLEAN_DTYPE, CLEAN_VERSION, FEATURES

__all__ = [
    "FULL_EPOCHS",
    "FULL_ROWS",
    "PARQUET_NUMPY",
    "QUICK_EPOCHS",
    "QUICK_ROWS",
    "RATIO_SPECS",
    "READER_NUMPY",
    "READER_TF",
    "TFIO",
    "TFIO_REQUIREMENTS",
    "TRAIN_KAFKA",
    "TRAIN_PARQUET",
    "TRAIN_PATHS",
    "Ratio",
    "RatioSpec",
    "TfioUnavailableError",
    "TrainBenchReport",
    "TrainBenchSettings",
    "compute_ratios",
    "default_tfio_venv",
    "encode_clean_rows",
    "ensure_tfio_venv",
    "run_train_bench",
    "skipped",
]

logger = logging.getLogger(__name__)

#: Rows with ``--quick`` (the suite then takes well under a minute once its venvs exist).
QUICK_ROWS: Final = 150_000
#: Rows by default.
FULL_ROWS: Final = 1_000_000
#: Training epochs with ``--quick`` and by default.
QUICK_EPOCHS: Final = 1
FULL_EPOCHS: Final = 3

READER_NUMPY: Final = "reader->numpy"
READER_TF: Final = "reader->tf.data"
PARQUET_NUMPY: Final = "parquet->numpy"
TFIO: Final = "tensorflow-io"
TRAIN_KAFKA: Final = "train-from-kafka"
TRAIN_PARQUET: Final = "train-from-parquet"
#: Every result the train suite reports, in order.
TRAIN_PATHS: Final = (READER_NUMPY, READER_TF, PARQUET_NUMPY, TFIO, TRAIN_KAFKA, TRAIN_PARQUET)

#: What the tensorflow-io virtualenv holds: the newest tensorflow-io and the TensorFlow it needs.
TFIO_REQUIREMENTS: Final = ("tensorflow==2.16.2", "tensorflow-io==0.37.1")
#: Python versions TensorFlow 2.16 has wheels for.
_TFIO_PYTHONS: Final = ((3, 9), (3, 10), (3, 11), (3, 12))
_TFIO_MARKER: Final = ".lakeless-tfio-ready"
_TFIO_SCRIPT: Final = Path(__file__).with_name("_tfio_reader.py")
#: librdkafka fetch settings the tensorflow-io consumer gets too: the lakeless reader's.
_FETCH_KEYS: Final = (
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.wait.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
)


class TfioUnavailableError(BenchError):
    """The tensorflow-io virtualenv is missing and could not be built (no network, no Python)."""


class TrainBenchSettings(BaseModel):
    """What the train suite measures and how much.

    Attributes:
        rows: ``sensor-clean`` records produced and read by every path.
        epochs: training epochs of both training paths.
        batch_size: training batch size (also the batch size of ``reader->tf.data``).
        cars: simulated cars (rows per simulator step).
        partitions: partitions of the topic.
        seed: simulator and weight seed (the same rows and initial weights every run).
        tfio: measure tensorflow-io (needs its virtualenv; built on first use).
        tfio_venv: where that virtualenv lives; ``None``: `default_tfio_venv`.
        tfio_build_timeout: most seconds building the virtualenv may take.
        timeout: most seconds one read may wait for records.
        quick: only recorded in the report.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(default=FULL_ROWS, ge=1)
    epochs: int = Field(default=FULL_EPOCHS, ge=1)
    batch_size: int = Field(default=256, ge=1)
    cars: int = Field(default=1000, ge=1)
    partitions: int = Field(default=6, ge=1)
    seed: int = Field(default=1, ge=0)
    tfio: bool = True
    tfio_venv: Path | None = None
    tfio_build_timeout: float = Field(default=1800.0, gt=0)
    timeout: float = Field(default=120.0, gt=0)
    quick: bool = False

    @classmethod
    def for_mode(
        cls, quick: bool, rows: int | None = None, epochs: int | None = None, **fields: Any
    ) -> TrainBenchSettings:
        """Settings for ``--quick`` or a full run; ``rows`` and ``epochs`` override the mode's."""
        return cls(
            rows=rows or (QUICK_ROWS if quick else FULL_ROWS),
            epochs=epochs or (QUICK_EPOCHS if quick else FULL_EPOCHS),
            quick=quick,
            **fields,
        )


# ---- ratios -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioSpec:
    """A ratio the report computes: ``numerator / denominator`` of one metric, with a goal.

    Attributes:
        numerator: result name on top.
        denominator: result name below.
        metric: ``events_per_s`` (higher is better) or ``seconds`` (lower is better).
        goal: ``(">=", 10.0)`` or ``("<=", 1.2)``; ``None``: informational.
    """

    numerator: str
    denominator: str
    metric: Literal["events_per_s", "seconds"]
    goal: tuple[Literal[">=", "<="], float] | None = None

    @property
    def name(self) -> str:
        """``"numerator / denominator"``."""
        return f"{self.numerator} / {self.denominator}"


#: The ratios of the train suite.
RATIO_SPECS: Final = (
    RatioSpec(READER_TF, TFIO, "events_per_s", (">=", 10.0)),
    RatioSpec(READER_NUMPY, TFIO, "events_per_s", (">=", 10.0)),
    RatioSpec(TRAIN_KAFKA, TRAIN_PARQUET, "seconds", ("<=", 1.2)),
    RatioSpec(READER_NUMPY, PARQUET_NUMPY, "events_per_s"),
)


@dataclass(frozen=True)
class Ratio:
    """A computed ratio; ``value`` is ``None`` (with a ``reason``) when a side was not measured.

    Attributes:
        spec: what was divided by what.
        value: the ratio, rounded to 3 decimals.
        met: whether the goal is met (``None`` without a goal or a value).
        reason: why there is no value.
    """

    spec: RatioSpec
    value: float | None
    met: bool | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "numerator", "denominator", "metric", "value", "goal", "met"}`` (+reason)."""
        goal = self.spec.goal
        out: dict[str, Any] = {
            "name": self.spec.name,
            "numerator": self.spec.numerator,
            "denominator": self.spec.denominator,
            "metric": self.spec.metric,
            "value": self.value,
            "goal": None if goal is None else f"{goal[0]} {goal[1]:g}",
            "met": self.met,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def _measured(result: BenchResult | None) -> str | None:
    """Why ``result`` cannot be divided (missing, skipped, failed, incomplete), or ``None``."""
    if result is None:
        return "not measured"
    if result.extra.get("skipped") or result.extra.get("failed"):
        return str(result.extra.get("reason", "skipped"))
    if not result.extra.get("complete", True):
        return "incomplete"
    if result.seconds <= 0 or result.events <= 0:
        return "nothing measured"
    return None


def compute_ratios(
    results: Sequence[BenchResult], specs: Sequence[RatioSpec] = RATIO_SPECS
) -> list[Ratio]:
    """The ratios of ``specs`` over ``results`` (a missing or skipped side gives no value).

    Example:
        >>> rs = [BenchResult(TRAIN_KAFKA, 300, 11.0), BenchResult(TRAIN_PARQUET, 300, 10.0)]
        >>> [(r.spec.name, r.value, r.met) for r in compute_ratios(rs)][2]
        ('train-from-kafka / train-from-parquet', 1.1, True)
    """
    by_name = {result.name: result for result in results}
    out = []
    for spec in specs:
        top, bottom = by_name.get(spec.numerator), by_name.get(spec.denominator)
        reason = _measured(top) or _measured(bottom)
        if reason is not None or top is None or bottom is None:
            side = spec.numerator if _measured(top) else spec.denominator
            out.append(Ratio(spec, None, reason=f"{side}: {reason}"))
            continue
        value = round(getattr(top, spec.metric) / getattr(bottom, spec.metric), 3)
        met = None
        if spec.goal is not None:
            op, bound = spec.goal
            met = value >= bound if op == ">=" else value <= bound
        out.append(Ratio(spec, value, met))
    return out


def skipped(name: str, reason: str, **extra: Any) -> BenchResult:
    """A result that was not measured, and why (its rate is 0; ratios leave it out)."""
    return BenchResult(name, 0, 0.0, {"skipped": True, "reason": reason, **extra})


@dataclass
class TrainBenchReport(BenchReport):
    """A `BenchReport` with the train suite's ratios.

    Each result's dict gains ``ratio``: ``{denominator: value}`` for every ratio it is the
    numerator of; the report's dict gains ``ratios``: every `Ratio` with its goal.

    Example:
        >>> report = TrainBenchReport(
        ...     "train",
        ...     [BenchResult(READER_TF, 1000, 1.0), skipped(TFIO, "--no-tfio")],
        ...     machine={},
        ... )
        >>> data = report.to_dict()
        >>> data["results"][0]["ratio"], data["ratios"][0]["reason"]
        ({'tensorflow-io': None}, 'tensorflow-io: --no-tfio')
    """

    specs: Sequence[RatioSpec] = RATIO_SPECS

    @property
    def ratios(self) -> list[Ratio]:
        """The ratios of `specs` over the results."""
        return compute_ratios(self.results, self.specs)

    def to_dict(self) -> dict[str, Any]:
        """`BenchReport.to_dict` plus ``ratio`` per result and the report's ``ratios``."""
        data = super().to_dict()
        ratios = self.ratios
        for result in data["results"]:
            mine = {
                r.spec.denominator: r.value for r in ratios if r.spec.numerator == result["name"]
            }
            if mine:
                result["ratio"] = mine
        data["ratios"] = [ratio.to_dict() for ratio in ratios]
        return data

    def table(self) -> Any:
        """`BenchReport.table`, with the ratios and their goals in the caption."""
        table = super().table()
        lines = [str(table.caption or "")]
        for ratio in self.ratios:
            goal = ratio.spec.goal
            target = "" if goal is None else f" (goal {goal[0]} {goal[1]:g}"
            if goal is not None:
                target += ")" if ratio.met is None else (": met)" if ratio.met else ": not met)")
            shown = f"{ratio.value:.2f}" if ratio.value is not None else f"n/a, {ratio.reason}"
            lines.append(f"{ratio.spec.name} ({ratio.spec.metric}) = {shown}{target}")
        table.caption = "\n".join(lines)
        return table


# ---- the rows -----------------------------------------------------------------------------------

#: A whole ``sensor-clean`` numeric head: the version byte, then `CLEAN_DTYPE`, packed.
_RECORD_DTYPE: Final = np.dtype(
    [("version", np.uint8), *((name, CLEAN_DTYPE[name]) for name in CLEAN_DTYPE.names or ())]
)
_LABELS: Final[tuple[str | None, ...]] = (*FAILURE_MODES, None)  # failure code -1 -> None


def _text(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff"
    data = value.encode()
    return len(data).to_bytes(2, "little") + data


class _Encoder:
    """`lakeless.schema.encode_clean` for whole `FleetBatch` rows at once (same bytes)."""

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str, int], bytes] = {}

    def encode(self, batch: FleetBatch) -> list[bytes]:
        n = len(batch)
        block = np.empty(n, _RECORD_DTYPE)
        block["version"] = CLEAN_VERSION
        block["ts"] = batch.ts
        block["seq"] = batch.seq
        for j, name in enumerate(FEATURES):
            block[name] = batch.values[:, j]
        raw = block.tobytes()
        size = _RECORD_DTYPE.itemsize
        tails = self._tails
        out = []
        for i, (car, model, code) in enumerate(
            zip(batch.car_ids, batch.models, batch.failure.tolist(), strict=True)
        ):
            tail = tails.get((car, model, code))
            if tail is None:
                tail = _text(car) + _text(model) + _text(_LABELS[code])
                tails[(car, model, code)] = tail
            out.append(raw[i * size : (i + 1) * size] + tail)
        return out


def encode_clean_rows(batch: FleetBatch) -> list[bytes]:
    """Every row of ``batch`` as a ``sensor-clean`` record, vectorized.

    The same bytes as `lakeless.schema.encode_clean` of each of ``batch.events()``, about ten
    times faster, so a million-record topic fills in seconds.

    Example:
        >>> from lakeless.schema import encode_clean
        >>> batch = Fleet(3, seed=1, start=0).step()
        >>> encode_clean_rows(batch) == [encode_clean(e) for e in batch.events()]
        True
    """
    return _Encoder().encode(batch)


@dataclass
class _Rows:
    """The rows of the run, column-wise, as produced (the Parquet file gets exactly these)."""

    car_id: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    failure: list[str | None] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    seq: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: FleetBatch, stop: int) -> None:
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


# ---- the tensorflow-io virtualenv ---------------------------------------------------------------


def default_tfio_venv() -> Path:
    """``$LAKELESS_BENCH_TFIO_VENV``, else ``$XDG_CACHE_HOME/lakeless/bench-tfio-venv``."""
    return cached_venv("LAKELESS_BENCH_TFIO_VENV", "bench-tfio-venv")


def _base_python() -> str:
    """A Python that TensorFlow 2.16 supports: this one, or a ``python3.X`` on the PATH."""
    if sys.version_info[:2] in _TFIO_PYTHONS:
        return sys.executable
    for major, minor in reversed(_TFIO_PYTHONS):
        if found := shutil.which(f"python{major}.{minor}"):
            return found
    raise TfioUnavailableError(
        "tensorflow-io 0.37.1 needs Python 3.9-3.12 for its TensorFlow 2.16; none found"
    )


_run: Final = partial(run_command, error=TfioUnavailableError)


def ensure_tfio_venv(path: Path | None = None, *, timeout: float = 1800.0) -> Path:
    """The Python of the tensorflow-io virtualenv at ``path``; built there first if needed.

    Building runs ``python -m venv`` and ``pip install`` `TFIO_REQUIREMENTS` (a few minutes
    and about 2 GB; needs the package index). A marker file written last makes an interrupted
    build count as missing, and the next call starts it again from scratch.

    Raises:
        TfioUnavailableError: it is missing and could not be built; the message says why.
    """
    return ensure_venv(
        path or default_tfio_venv(),
        TFIO_REQUIREMENTS,
        marker=_TFIO_MARKER,
        base_python=_base_python,
        timeout=timeout,
        run=lambda command, seconds, what: _run(command, seconds, what),  # patchable in tests
        check_import="tensorflow_io",
    )


# ---- the run ------------------------------------------------------------------------------------


class _TrainRun:
    """One run of the suite against a given broker."""

    def __init__(self, bench: TrainBenchSettings, kafka: KafkaSettings) -> None:
        self.bench = bench
        self.kafka = kafka
        self.run_id = uuid.uuid4().hex[:8]
        self.topic = f"lakeless-bench-{self.run_id}-train"
        self.group = f"lakeless-bench-{self.run_id}-tfio"
        self.tfio_python: Path | None = None
        self.tfio_reason = "--no-tfio"
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def prepare_tfio(self) -> dict[str, Any]:
        """Find or build the tensorflow-io virtualenv (before anything is timed)."""
        if not self.bench.tfio:
            return {}
        started = time.monotonic()
        try:
            self.tfio_python = ensure_tfio_venv(
                self.bench.tfio_venv, timeout=self.bench.tfio_build_timeout
            )
        except TfioUnavailableError as exc:
            logger.warning("tensorflow-io is skipped: %s", exc)
            self.tfio_reason = f"no tensorflow-io virtualenv: {exc}"
        return {"tfio_venv_seconds": round(time.monotonic() - started, 1)}

    def run(self, workdir: Path) -> list[BenchResult]:
        bench = self.bench
        create_topics(self.kafka, [TopicSpec(self.topic, bench.partitions, 1)])
        parquet = workdir / "rows.parquet"
        parquet_bytes = self.fill(parquet)
        results = [self.reader_numpy()]
        _warm_up_tf()
        results.append(self.reader_tf())
        results.append(self.parquet_numpy(parquet, parquet_bytes))
        results.append(self.tfio())
        x = read_parquet_features(parquet)
        self.mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        self.std = np.where(std > 1e-6, std, 1.0)
        # Untimed: the first fit of the process pays for tracing and kernel set-up.
        self.train(x[: min(len(x), 20 * bench.batch_size)], epochs=1)
        train_parquet = self.train(x, epochs=bench.epochs)
        del x
        results.append(self.train(None, epochs=bench.epochs))
        results.append(train_parquet)
        return results

    def cleanup(self) -> None:
        """Delete the topic and tensorflow-io's consumer group from a broker we did not start."""
        admin = make_admin(self.kafka)  # must outlive its futures
        futures: dict[str, Any] = {}
        try:
            futures.update(admin.delete_topics([self.topic], operation_timeout=30))
            if self.tfio_python is not None:
                futures.update(admin.delete_consumer_groups([self.group], request_timeout=30))
        except Exception as exc:  # cleanup must never hide the results
            logger.warning("could not clean up after the train bench: %s", exc)
        for name, future in futures.items():
            try:
                future.result()
            except Exception as exc:
                logger.debug("could not delete %s: %s", name, exc)

    # ---- the rows -------------------------------------------------------------------------------

    def fill(self, parquet: Path) -> int:
        """Produce ``rows`` records into the topic and write the same rows to ``parquet``."""
        bench = self.bench
        steps = -(-bench.rows // bench.cars)
        # Stamped up to now, one report per car and second, as a fleet would have sent them.
        start = int(time.time() * 1000) - steps * 1000
        fleet = Fleet(bench.cars, seed=bench.seed, start=start)
        encoder = _Encoder()
        rows = _Rows()
        producer = make_producer(
            self.kafka,
            linger_ms=20,
            queue_buffering_max_messages=2_000_000,
            queue_buffering_max_kbytes=1 << 20,
        )
        topic = self.topic
        started = time.monotonic()
        left = bench.rows
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None and len(failed) < 5:
                failed.append(str(err))

        while left > 0:
            batch = fleet.step()
            stop = min(left, len(batch))
            rows.add(batch, stop)
            values = encoder.encode(batch)[:stop]
            for key, value, ts in zip(
                batch.car_ids[:stop], values, batch.ts[:stop].tolist(), strict=True
            ):
                while True:
                    try:
                        producer.produce(
                            topic, value, key.encode(), timestamp=ts, on_delivery=delivered
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
            left -= stop
        remaining = producer.flush(bench.timeout)
        if remaining or failed:
            raise BenchError(f"could not produce the rows ({remaining} left): {failed}")
        logger.info("produced %d rows in %.1fs", bench.rows, time.monotonic() - started)
        size = rows.write_parquet(parquet)
        logger.info("wrote %s (%.1f MB)", parquet, size / 1e6)
        return size

    # ---- the paths ------------------------------------------------------------------------------

    def _dataset(self) -> KafkaDataset:
        return KafkaDataset(self.kafka, self.topic, cache=False, timeout=self.bench.timeout)

    def reader_numpy(self) -> BenchResult:
        logger.info("%s: %d rows", READER_NUMPY, self.bench.rows)
        started = time.perf_counter()
        dataset = self._dataset()
        x = dataset.features()
        seconds = time.perf_counter() - started
        return BenchResult(
            READER_NUMPY,
            len(x),
            seconds,
            {
                "complete": len(x) == self.bench.rows,
                "shape": list(x.shape),
                "dtype": str(x.dtype),
                "kafka_reads": dataset.kafka_reads,
                "checksum": _checksum(x),
                "note": "KafkaDataset.features(), cache off, window resolution included",
            },
        )

    def reader_tf(self) -> BenchResult:
        bench = self.bench
        logger.info("%s: %d rows", READER_TF, bench.rows)
        started = time.perf_counter()
        dataset = self._dataset()
        events = 0
        for x, _ in dataset.to_tf_dataset(bench.batch_size, shuffle=True, seed=bench.seed):
            events += int(x.shape[0])
        seconds = time.perf_counter() - started
        return BenchResult(
            READER_TF,
            events,
            seconds,
            {
                "complete": events == bench.rows,
                "batch_size": bench.batch_size,
                "kafka_reads": dataset.kafka_reads,
                "note": "one epoch of to_tf_dataset (shuffled (x, x) pairs), cache off",
            },
        )

    def parquet_numpy(self, parquet: Path, size: int) -> BenchResult:
        logger.info("%s: %d rows", PARQUET_NUMPY, self.bench.rows)
        started = time.perf_counter()
        x = read_parquet_features(parquet)
        seconds = time.perf_counter() - started
        return BenchResult(
            PARQUET_NUMPY,
            len(x),
            seconds,
            {
                "complete": len(x) == self.bench.rows,
                "file_bytes": size,
                "checksum": _checksum(x),
                "note": "pyarrow read_table (snappy, page-cached) -> float32 matrix",
            },
        )

    def tfio(self) -> BenchResult:
        bench = self.bench
        if self.tfio_python is None:
            return skipped(TFIO, self.tfio_reason)
        read = READ_CONFIG
        config = {k: v for k, v in self.kafka.librdkafka().items() if k != "bootstrap.servers"}
        config.update({key: read[key] for key in _FETCH_KEYS})
        args = {
            "servers": self.kafka.bootstrap_servers,
            "topic": self.topic,
            "group_id": self.group,
            "expected": bench.rows,
            "configuration": [f"{k}={v}" for k, v in config.items()],
            "stream_timeout": int(bench.timeout * 1000),
        }
        logger.info("%s: %d rows in %s", TFIO, bench.rows, self.tfio_python)
        self._commit_log_start()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)
        out = run_peer_script(
            TFIO, self.tfio_python, _TFIO_SCRIPT, args, timeout=3 * bench.timeout + 60, env=env
        )
        if isinstance(out, BenchResult):
            return out
        return BenchResult(
            TFIO,
            int(out["events"]),
            float(out["seconds"]),
            {
                "complete": bool(out["complete"]),
                "first_batch_s": out.get("first_batch_s"),
                "decoding": out.get("decoding"),
                "tensorflow": out.get("tensorflow"),
                "tensorflow_io": out.get("tensorflow_io"),
                "note": "KafkaGroupIODataset, fresh group from the log start, batched decode",
                "offsets": "committed at the log start first (its ListOffsets v0 is gone in "
                "Kafka 4)",
            },
        )

    def _commit_log_start(self) -> None:
        """Commit the log-start offsets for tensorflow-io's fresh group, untimed.

        tensorflow-io 0.37.1's librdkafka resolves ``auto.offset.reset`` with ListOffsets v0,
        which Kafka 4 removed: a group without committed offsets waits forever. Committed
        offsets at the log start are what ``earliest`` would have found.
        """
        consumer = make_consumer(self.kafka, self.group)
        try:
            partitions = consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
            offsets = [
                TopicPartition(
                    self.topic,
                    p,
                    consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)[0],
                )
                for p in sorted(partitions)
            ]
            consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            consumer.close()

    def train(self, x: np.ndarray | None, *, epochs: int) -> BenchResult:
        """Fit the network for ``epochs``: on ``x`` (the Parquet rows), else from Kafka."""
        import tensorflow as tf

        from lakeless.model import Autoencoder
        from lakeless.model.autoencoder import _keras

        bench = self.bench
        assert self.mean is not None and self.std is not None
        mean = tf.constant(self.mean, tf.float32)
        std = tf.constant(self.std, tf.float32)

        def standardize(batch: Any, *_: Any) -> Any:
            z = (batch - mean) / std
            return z, z

        dataset: KafkaDataset | None = None
        if x is None:
            dataset = self._dataset()
            source = dataset.to_tf_dataset(
                bench.batch_size, shuffle=True, seed=bench.seed, pairs=False
            )
            rows = dataset.window.num_records
            source_name = "Kafka"
        else:
            # The same block shuffle as to_tf_dataset: blocks shuffled inside, then rebatched.
            source = (
                tf.data.Dataset.from_tensor_slices(x)
                .batch(_TF_BLOCK)
                .map(tf.random.shuffle)
                .rebatch(bench.batch_size)
            )
            rows = len(x)
            source_name = "the Parquet rows"
        data = source.map(standardize).prefetch(tf.data.AUTOTUNE)
        template = Autoencoder(batch_size=bench.batch_size, seed=bench.seed)
        keras = _keras()
        keras.utils.set_random_seed(bench.seed)
        network = keras.Sequential(name="autoencoder")
        network.add(keras.Input((len(FEATURES),), name="normalized"))
        for i, width in enumerate(template.units):
            network.add(keras.layers.Dense(width, activation=template.activation, name=f"h{i}"))
        network.add(keras.layers.Dense(len(FEATURES), name="reconstruction"))
        network.compile(optimizer=keras.optimizers.Adam(template.learning_rate), loss="mse")
        logger.info("training %d epoch(s) on %d rows from %s", epochs, rows, source_name)
        started = time.perf_counter()
        with warnings.catch_warnings():
            # A Kafka epoch's length is unknown until it ends: Keras warns at the first end.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            history = network.fit(data, epochs=epochs, shuffle=False, verbose=0)
        seconds = time.perf_counter() - started
        name = TRAIN_KAFKA if x is None else TRAIN_PARQUET
        extra: dict[str, Any] = {
            "epochs": epochs,
            "rows": rows,
            "batch_size": bench.batch_size,
            "loss": [round(float(v), 5) for v in history.history.get("loss", [])],
            "units": list(template.units),
        }
        if dataset is not None:
            extra["kafka_reads"] = dataset.kafka_reads
            extra["note"] = "to_tf_dataset, cache off: every epoch reads Kafka"
        else:
            extra["note"] = "from_tensor_slices over the Parquet-loaded array"
        return BenchResult(name, rows * epochs, seconds, extra)


def _checksum(x: np.ndarray) -> float:
    """Order-independent sum of a feature matrix: the paths read the same rows."""
    return round(float(x.sum(dtype=np.float64)), 1)


def _warm_up_tf() -> None:
    """Import TensorFlow and run one tiny ``from_generator`` pipeline, untimed."""
    import tensorflow as tf

    def blocks() -> Iterator[np.ndarray]:
        yield np.zeros((64, len(FEATURES)), np.float32)

    spec = tf.TensorSpec(shape=(None, len(FEATURES)), dtype=tf.float32)
    for _ in tf.data.Dataset.from_generator(blocks, output_signature=spec).rebatch(16):
        pass


@contextlib.contextmanager
def _maybe_throwaway(workdir: Path, kafka: KafkaSettings | None) -> Iterator[KafkaSettings]:
    if kafka is not None:
        yield kafka
        return
    with _throwaway_kafka(workdir) as settings:
        yield settings


def run_train_bench(
    bench: TrainBenchSettings | None = None,
    kafka: KafkaSettings | None = None,
) -> TrainBenchReport:
    """Run the train suite; returns a report with `TRAIN_PATHS` and their ratios.

    Args:
        bench: what to measure (default: a full run, tensorflow-io included).
        kafka: an existing cluster to use; ``None`` starts a throwaway broker for the run.

    Raises:
        BenchError: the rows could not be produced.
        lakeless.errors.StackError: the throwaway broker did not start.
    """
    bench = bench or TrainBenchSettings()
    started = time.monotonic()
    machine = machine_info()
    throwaway = kafka is None
    with tempfile.TemporaryDirectory(prefix="lakeless-bench-train-") as tmp:
        workdir = Path(tmp)
        run = _TrainRun(bench, kafka or KafkaSettings())
        machine |= run.prepare_tfio()
        with _maybe_throwaway(workdir, kafka) as settings:
            run.kafka = settings
            try:
                results = run.run(workdir)
            finally:
                if not throwaway:
                    run.cleanup()
    import tensorflow as tf

    from lakeless.stack._kafka import find_jars_dir, kafka_version

    machine |= {
        "kafka": kafka_version(find_jars_dir()),
        "librdkafka": confluent_kafka.libversion()[0],
        "tensorflow": tf.__version__,
        "broker": "throwaway" if throwaway else run.kafka.bootstrap_servers,
        "rows": bench.rows,
        "epochs": bench.epochs,
        "load_avg_1m_after": machine_info().get("load_avg_1m"),
    }
    return TrainBenchReport(
        "train",
        results,
        quick=bench.quick,
        machine=machine,
        wall_seconds=time.monotonic() - started,
    )
