"""The training benchmark: reading and training straight from Kafka against a data lake.

Every path is measured in one run, on one machine, on the same rows: simulated ``sensor-clean``
records (at least a million by default) produced once into a fresh topic of a Kafka broker (by
default a throwaway one on free ports, always stopped after the run), and the same rows written
once to a local Parquet file before anything is timed:

``raw-consume`` (the ceiling)
    Plain confluent-kafka consuming the same window (every partition, offset 0 to the end)
    with the reader's own librdkafka settings and ``consume`` batches, and no decoding at all:
    the physical limit of a Kafka reader on this machine. It runs interleaved with
    ``reader->numpy`` (``repeats`` times each, after one unmeasured warm-up read). The pairs
    below run interleaved the same way (``reader->tf.data`` with ``memory->tf.data``,
    ``train-from-kafka`` with ``train-from-parquet``); each of these six reports its median
    run, every run's rate and the spread.
``reader->numpy``
    `lakeless.dataset.KafkaDataset` (cache off, so Kafka is really read) resolving the whole
    topic and returning its ``features()`` matrix, float32 ``(rows, 18)``.
``reader->tf.data``
    One epoch of ``KafkaDataset.to_tf_dataset`` (cache off, shuffled, ``(x, x)`` pairs at the
    training batch size) consumed to the end inside TensorFlow (``Dataset.reduce``), as
    ``Model.fit`` consumes it: a Python ``for`` loop over the batches would time the loop (one
    eager call per batch of 256), not the reader.
``memory->tf.data``
    The same ``tf.data`` pipeline (`lakeless.dataset._dataset.tf_dataset_of_blocks`, blocks
    shuffled the same way) over the same rows already in memory, consumed the same way: the
    ceiling of ``tf.data`` itself at that batch size, the bound of ``reader->tf.data``.
``parquet->numpy``
    The data-lake baseline: the Parquet file (pyarrow, snappy, written before timing and
    therefore in the page cache, as the topic's segments are) read into the same float32
    matrix.
``tensorflow-io-per-message`` and ``tensorflow-io``
    The talk's method: tensorflow-io's ``KafkaGroupIODataset`` consuming the same topic in a
    fresh consumer group each and decoding every record inside ``tf.data``: one message at a
    time, as the talk's demo did, and batched, as favourably as tensorflow-io allows (see
    ``lakeless.bench._tfio_reader``). tensorflow-io 0.37.1 installs only beside
    TensorFlow 2.16, so it runs as a subprocess in a virtualenv of its own, built on first use
    (`lakeless.bench._train_tfio.ensure_tfio_venv`; a few minutes, cached under
    ``~/.cache/lakeless``). Without a network
    that build fails and the result is reported as skipped, with the reason.
``train-from-kafka`` and ``train-from-parquet``
    Wall seconds of ``epochs`` epochs of the same network (the default `Autoencoder`'s layers,
    activation, optimizer, learning rate and batch size; the same initial weights) on the same
    rows, fed from ``KafkaDataset.to_tf_dataset`` (cache off: every epoch reads Kafka again)
    versus from a ``tf.data`` pipeline over the Parquet-loaded array. Both pipelines shuffle
    the same way (blocks of 16,384 rows, shuffled within the block) and standardize inside
    ``tf.data`` with the same constants.

The report carries ratios with their goals: ``reader->numpy`` over ``raw-consume`` (goal at
least 0.8x), ``reader->tf.data`` over ``reader->numpy`` (goal at least 0.9x),
``reader->tf.data`` and ``reader->numpy`` over ``tensorflow-io-per-message`` (goal at least
10x; over the batched ``tensorflow-io`` beside it) and
``train-from-kafka`` over ``train-from-parquet`` seconds (goal at most 1.2). Unmeasured
warm-ups absorb one-time costs first (importing TensorFlow, tracing the first ``tf.data`` and
Keras functions). Nothing is asserted about speed.

The suite's modules: this one runs it (the rows, the reads, the training); ``_train_report``
holds the path names, the ratios and the report, ``_train_tfio`` the tensorflow-io peer and
its virtualenv, and ``_rows`` (shared with ``bench score``) the rows' encoding, the topic's
filling and the Parquet file.
"""

from __future__ import annotations

import logging
import operator
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any, Final

import confluent_kafka
import numpy as np
from confluent_kafka import TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from lakeless.bench._harness import (
    BenchError,
    delete_bench_topics,
    kafka_facts,
    throwaway_kafka_unless,
)
from lakeless.bench._result import BenchResult, machine_info, skipped
from lakeless.bench._rows import ParquetRows, produce_fleet, read_parquet_features
from lakeless.bench._train_report import (
    MEMORY_TF,
    PARQUET_NUMPY,
    RAW_CONSUME,
    READER_NUMPY,
    READER_TF,
    TFIO,
    TFIO_PER_MESSAGE,
    TRAIN_KAFKA,
    TRAIN_PARQUET,
    TrainBenchReport,
    median_run,
)
from lakeless.bench._train_tfio import TfioUnavailableError, ensure_tfio_venv, read_with_tfio
from lakeless.config import KafkaSettings, Settings
from lakeless.dataset import KafkaDataset
from lakeless.dataset._dataset import _TF_BLOCK, tf_block, tf_dataset_of_blocks
from lakeless.fleet._schema import FEATURES
from lakeless.kafka import TopicSpec, create_topics
from lakeless.pipeline import Pipeline

__all__ = [
    "FULL_EPOCHS",
    "FULL_ROWS",
    "QUICK_EPOCHS",
    "QUICK_ROWS",
    "TrainBenchSettings",
    "run_train_bench",
]

logger = logging.getLogger(__name__)

#: Rows with ``--quick`` (the suite then takes well under a minute once its venvs exist).
QUICK_ROWS: Final = 150_000
#: Rows by default.
FULL_ROWS: Final = 1_000_000
#: Training epochs with ``--quick`` and by default.
QUICK_EPOCHS: Final = 1
FULL_EPOCHS: Final = 3


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
        repeats: measured runs of each interleaved pair of paths (``raw-consume`` with
            ``reader->numpy``, the two tf.data paths, the two training paths).
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
    repeats: int = Field(default=3, ge=1)
    timeout: float = Field(default=120.0, gt=0)
    quick: bool = False

    @classmethod
    def for_mode(
        cls, quick: bool, rows: int | None = None, epochs: int | None = None, **fields: Any
    ) -> TrainBenchSettings:
        """Settings for ``--quick`` or a full run; ``rows`` and ``epochs`` override the mode's."""
        defaults = {"repeats": 1} if quick else {}
        return cls(
            rows=rows or (QUICK_ROWS if quick else FULL_ROWS),
            epochs=epochs or (QUICK_EPOCHS if quick else FULL_EPOCHS),
            quick=quick,
            **{**defaults, **fields},
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
        self.raw_consume()  # unmeasured: the first read of a fresh topic warms the broker
        results = self.interleaved(self.raw_consume, self.reader_numpy)
        _warm_up_tf()
        x = read_parquet_features(parquet)
        results += self.interleaved(self.reader_tf, lambda: self.memory_tf(x))
        results.append(self.parquet_numpy(parquet, parquet_bytes))
        results.append(self.tfio(per_message=False))
        results.append(self.tfio(per_message=True))
        self.mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        self.std = np.where(std > 1e-6, std, 1.0)
        # Untimed: the first fit of the process pays for tracing and kernel set-up.
        self.train(x[: min(len(x), 20 * bench.batch_size)], epochs=1)
        results += self.interleaved(
            lambda: self.train(None, epochs=bench.epochs),
            lambda: self.train(x, epochs=bench.epochs),
        )
        return results

    def cleanup(self) -> None:
        """Delete the topic and tensorflow-io's consumer group from a broker we did not start."""
        groups = (
            [f"{self.group}-batched", f"{self.group}-per-message"]
            if self.tfio_python is not None
            else []
        )
        delete_bench_topics(self.kafka, [self.topic], groups)

    # ---- the rows -------------------------------------------------------------------------------

    def fill(self, parquet: Path) -> int:
        """Produce ``rows`` records into the topic and write the same rows to ``parquet``."""
        bench = self.bench
        rows = ParquetRows()
        produce_fleet(
            self.kafka,
            self.topic,
            bench.rows,
            cars=bench.cars,
            seed=bench.seed,
            timeout=bench.timeout,
            error=BenchError,
            each=rows.add,
        )
        size = rows.write_parquet(parquet)
        logger.info("wrote %s (%.1f MB)", parquet, size / 1e6)
        return size

    # ---- the paths ------------------------------------------------------------------------------

    def _dataset(self) -> KafkaDataset:
        return KafkaDataset(
            self.kafka,
            self.topic,
            cache=False,
            timeout=self.bench.timeout,
            pipeline=Pipeline.builtin(Settings(kafka=self.kafka)),
        )

    def interleaved(self, *paths: Callable[[], BenchResult]) -> list[BenchResult]:
        """Each path's median run of ``repeats`` rounds, the paths run in turn (A B A B)."""
        runs: list[list[BenchResult]] = [[] for _ in paths]
        for _ in range(self.bench.repeats):
            for path, done in zip(paths, runs, strict=True):
                done.append(path())
        return [median_run(done) for done in runs]

    def raw_consume(self) -> BenchResult:
        """Every record of the window with the reader's consumer settings, nothing decoded.

        As little per record as a correct reader does: its error checked (in a
        comprehension, with the garbage collector paused during ``consume``, as the reader
        does). Nothing is produced to the topic during the run, so the window's record count
        tells when it is read.
        """
        from lakeless.dataset._reader import CONSUME_BATCH, _gc_paused, consumer_config

        bench = self.bench
        logger.info("%s: %d rows", RAW_CONSUME, bench.rows)
        started = time.perf_counter()
        window = self._dataset().window
        target = window.num_records
        consumer = confluent_kafka.Consumer(
            consumer_config(self.kafka, {"enable.partition.eof": False})
        )
        records = 0
        try:
            consumer.assign(
                [
                    TopicPartition(window.topic, p, start)
                    for p, (start, end) in window.partitions.items()
                    if end > start
                ]
            )
            deadline = time.monotonic() + bench.timeout
            while records < target and time.monotonic() < deadline:
                with _gc_paused():
                    messages = consumer.consume(CONSUME_BATCH, 0.2)
                    errors = [m.error() for m in messages]
                    if any(map(operator.is_not, errors, repeat(None))):  # as the reader checks
                        messages = [m for m, e in zip(messages, errors, strict=True) if e is None]
                records += len(messages)
        finally:
            consumer.close()
        seconds = time.perf_counter() - started
        return BenchResult(
            RAW_CONSUME,
            records,
            seconds,
            {
                "complete": records == bench.rows,
                "note": "confluent-kafka consume() of the window, the reader's settings, "
                "no decoding",
            },
        )

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
        events = _consume_in_tf(
            dataset.to_tf_dataset(bench.batch_size, shuffle=True, seed=bench.seed)
        )
        seconds = time.perf_counter() - started
        return BenchResult(
            READER_TF,
            events,
            seconds,
            {
                "complete": events == bench.rows,
                "batch_size": bench.batch_size,
                "kafka_reads": dataset.kafka_reads,
                "note": "one epoch of to_tf_dataset (shuffled (x, x) pairs), cache off, "
                "consumed inside TensorFlow as Model.fit consumes it",
            },
        )

    def memory_tf(self, x: np.ndarray) -> BenchResult:
        """The same tf.data pipeline over the rows in memory: the ceiling of tf.data itself."""
        bench = self.bench
        logger.info("%s: %d rows", MEMORY_TF, len(x))
        rng = np.random.default_rng(bench.seed)
        block = tf_block(bench.batch_size)

        def blocks() -> Iterator[np.ndarray]:
            for start in range(0, len(x), block):
                rows = x[start : start + block]
                yield rows[rng.permutation(len(rows))]

        started = time.perf_counter()
        events = _consume_in_tf(
            tf_dataset_of_blocks(blocks, x.shape[1], bench.batch_size, pairs=True)
        )
        seconds = time.perf_counter() - started
        return BenchResult(
            MEMORY_TF,
            events,
            seconds,
            {
                "complete": events == bench.rows,
                "batch_size": bench.batch_size,
                "note": "to_tf_dataset's pipeline over the Parquet-loaded rows in memory "
                "(blocks shuffled the same way), consumed the same way: tf.data's own ceiling",
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

    def tfio(self, *, per_message: bool) -> BenchResult:
        name = TFIO_PER_MESSAGE if per_message else TFIO
        if self.tfio_python is None:
            return skipped(name, self.tfio_reason)
        return read_with_tfio(
            self.tfio_python,
            self.kafka,
            self.topic,
            f"{self.group}-{'per-message' if per_message else 'batched'}",  # fresh groups
            rows=self.bench.rows,
            timeout=self.bench.timeout,
            per_message=per_message,
        )

    def train(self, x: np.ndarray | None, *, epochs: int) -> BenchResult:
        """Fit the network for ``epochs``: on ``x`` (the Parquet rows), else from Kafka."""
        import tensorflow as tf

        from lakeless.model import Autoencoder
        from lakeless.model.autoencoder import STEPS_PER_EXECUTION, _keras

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
        network.compile(
            optimizer=keras.optimizers.Adam(template.learning_rate),
            loss="mse",
            steps_per_execution=STEPS_PER_EXECUTION,  # as lakeless train compiles it
        )
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


def _consume_in_tf(data: Any) -> int:
    """Rows of one epoch of ``(x, x)`` batches, iterated inside TensorFlow (no Python per batch)."""
    import tensorflow as tf

    total = data.reduce(
        tf.constant(0, tf.int64), lambda n, pair: n + tf.shape(pair[0], out_type=tf.int64)[0]
    )
    return int(total)


def _warm_up_tf() -> None:
    """Import TensorFlow and run one tiny ``from_generator`` pipeline, untimed."""
    import tensorflow as tf

    def blocks() -> Iterator[np.ndarray]:
        yield np.zeros((64, len(FEATURES)), np.float32)

    spec = tf.TensorSpec(shape=(None, len(FEATURES)), dtype=tf.float32)
    for _ in tf.data.Dataset.from_generator(blocks, output_signature=spec).rebatch(16):
        pass


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
        with throwaway_kafka_unless(kafka, workdir) as settings:
            run.kafka = settings
            try:
                results = run.run(workdir)
            finally:
                if not throwaway:
                    run.cleanup()
    import tensorflow as tf

    machine |= {
        **kafka_facts(run.kafka, throwaway=throwaway),
        "tensorflow": tf.__version__,
        "rows": bench.rows,
        "epochs": bench.epochs,
    }
    return TrainBenchReport.finished(
        "train", results, started=started, machine=machine, ceiling=RAW_CONSUME, quick=bench.quick
    )
