"""`KafkaDataset`: a topic window as training data, read straight from Kafka."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from lakeless.config import KafkaSettings, load_settings
from lakeless.dataset._reader import WindowReader, consumer_config, follow
from lakeless.dataset._window import DatasetError, ResolvedWindow, Window
from lakeless.lifecycle import RunLimits, Stopper
from lakeless.pipeline import Pipeline
from lakeless.schema import CleanBatch, concat, empty_batch

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

logger = logging.getLogger(__name__)

_ALL: Final = Window.all()
#: Records per block handed from Python to tf.data.
_TF_BLOCK: Final = 16_384
#: Blocks read ahead of the one being cut into batches: the next read overlaps the training on
#: this one (a prefetch of batches only, after rebatch, drains within a block, then waits).
_TF_PREFETCH_BLOCKS: Final = 4
#: Memory a cached record needs per string field besides its numbers (a reference: the
#: strings themselves are shared between records).
_CACHED_STRING_BYTES: Final = 8


def rebatch(chunks: Iterable[CleanBatch], size: int) -> Iterator[CleanBatch]:
    """Regroup ``chunks`` into batches of exactly ``size`` records (the last may be smaller).

    Batch boundaries depend only on the order of the records and ``size``, never on how the
    records were chunked when read, so a cached epoch and a re-read epoch batch identically.

    Example:
        >>> from lakeless.examples import car_fleet
        >>> from lakeless.schema import empty_batch
        >>> chunk = concat([empty_batch(car_fleet())] * 1)
        >>> chunk = CleanBatch(chunk.schema, np.zeros(5, chunk.numeric.dtype), {})
        >>> [len(b) for b in rebatch([chunk, chunk], 4)]
        [4, 4, 2]
    """
    if size < 1:
        raise ValueError("batch size must be at least 1")
    pending: list[CleanBatch] = []
    count = 0
    for chunk in chunks:
        start = 0
        while start < len(chunk):
            step = min(size - count, len(chunk) - start)
            pending.append(chunk.take(start, start + step) if step < len(chunk) else chunk)
            count += step
            start += step
            if count == size:
                yield concat(pending)
                pending, count = [], 0
    if pending:
        yield concat(pending)


class KafkaDataset:
    """Records of a topic window as numpy, pandas, ``tf.data`` or PyTorch data; no files.

    The window is resolved to exact per-partition offsets when the dataset is made (see
    `window`), so iterating again, or rebuilding the dataset later from ``window.to_dict()``,
    returns the same records in the same order: partition by partition, each in offset order.
    Records move from the remote tier back to the client by themselves when a window reaches
    into tiered-off segments.

    Iterating twice does not read Kafka twice when the window fits in memory: the first full
    pass fills a cache (see ``cache``); otherwise every pass streams the window again.

    Args:
        kafka: how to reach Kafka; ``None``: from the ``LAKELESS_*`` environment.
        topic: a topic of clean records; ``None``: the pipeline's clean topic.
        window: a `Window`, a `ResolvedWindow` (replay a recorded run), or a duration such as
            ``"30m"`` (short for ``Window.last("30m")``).
        batch_size: records per `batches` batch.
        cache: keep the decoded window in memory after the first full pass: ``True``,
            ``False``, or ``"auto"`` (when the window needs at most ``max_cache_bytes``).
        max_cache_bytes: memory budget of ``cache="auto"``.
        follow: after the window, keep yielding new records as they arrive (continual
            training); stops on ``limits`` or ``stopper``. Never cached.
        limits: when a ``follow`` iteration stops (count counts records of the window too).
        stopper: a `Stopper` to stop a ``follow`` iteration from elsewhere.
        readahead_bytes: per-pass buffer for partitions read ahead of the one being yielded.
        timeout: seconds without any record before a read fails.
        consumer_config: extra librdkafka properties for the reader (``{"fetch.max.bytes": ..}``).
        pipeline: the pipeline whose records the topic holds (its schema decodes them): a
            `Pipeline`, a name, or ``None`` for the settings' (``LAKELESS_PIPELINE``).

    Raises:
        DatasetError: the window cannot be resolved (unknown topic, offsets already deleted).

    Example:
        Three lines in a notebook (needs a broker, so not run as a doctest)::

            >>> ds = KafkaDataset(window=Window.last("30m"))  # doctest: +SKIP
            >>> x = ds.features()                             # doctest: +SKIP
            >>> lineage = ds.window.to_dict()                 # doctest: +SKIP

        Train a Keras autoencoder, several epochs from one Kafka read::

            >>> model.fit(ds.to_tf_dataset(batch_size=256), epochs=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        topic: str | None = None,
        window: Window | ResolvedWindow | str = _ALL,
        *,
        batch_size: int = 65_536,
        cache: bool | Literal["auto"] = "auto",
        max_cache_bytes: int = 2 << 30,
        follow: bool = False,
        limits: RunLimits | None = None,
        stopper: Stopper | None = None,
        readahead_bytes: int = 256 << 20,
        timeout: float = 60.0,
        consumer_config: Mapping[str, Any] | None = None,
        pipeline: Pipeline | str | None = None,
    ) -> None:
        if kafka is None or not isinstance(pipeline, Pipeline):
            settings = load_settings(**({"kafka": kafka.model_dump()} if kafka else {}))
            kafka = kafka or settings.kafka
            if not isinstance(pipeline, Pipeline):
                from lakeless.pipeline import resolve_pipeline

                pipeline = resolve_pipeline(settings, pipeline)
        topic = topic or pipeline.topics.clean
        if batch_size < 1:
            raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
        if isinstance(window, str):
            window = Window.last(window)
        if isinstance(window, ResolvedWindow):
            if window.topic != topic:
                raise DatasetError(f"the window is of topic {window.topic!r}, not {topic!r}")
            _check_same_cluster(kafka, window, timeout)
            resolved = window
        else:
            resolved = window.resolve(kafka, topic, timeout=timeout)
        self.kafka = kafka
        self.topic = topic
        self.pipeline = pipeline
        self.schema = pipeline.schema
        self.batch_size = batch_size
        self.follow = follow
        self.limits = limits
        self.stopper = stopper
        self.readahead_bytes = readahead_bytes
        self.timeout = timeout
        self._config = consumer_config_for(kafka, consumer_config)
        self._window = resolved
        if follow:
            self.cached = False
        elif cache == "auto":
            # The decoded numbers are views of the records' heads (header included).
            record_bytes = self.pipeline.decoder().head + _CACHED_STRING_BYTES * len(
                self.schema.strings
            )
            self.cached = resolved.num_records * record_bytes <= max_cache_bytes
        else:
            self.cached = bool(cache)
        self._cache: list[CleanBatch] | None = None
        #: Full passes over Kafka so far, and what the last one read and took.
        self.kafka_reads = 0
        self.last_read_records = 0
        self.last_read_seconds = 0.0
        logger.info("dataset %s (cache %s)", resolved.describe(), self.cached)

    @property
    def schema_itemsize(self) -> int:
        """Bytes of one record's numbers when decoded."""
        return self.pipeline.decoder().codec.dtype.itemsize

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature columns, in order (the pipeline schema's features)."""
        return self.schema.feature_names

    @property
    def window(self) -> ResolvedWindow:
        """The resolved window: exact offsets per partition; ``to_dict()`` is the lineage."""
        return self._window

    def __repr__(self) -> str:
        return f"KafkaDataset({self._window.describe()}, cache={self.cached})"

    def __iter__(self) -> Iterator[CleanBatch]:
        return self.batches()

    # ---- reading ----------------------------------------------------------------------------

    def batches(self, *, strings: bool = True) -> Iterator[CleanBatch]:
        """The window as `CleanBatch` batches of `batch_size` records, in the fixed order.

        Args:
            strings: decode the string fields too (key, context, label); ``False`` skips them when
                only numbers are needed (ignored when the records come from, or go to, the
                cache, which always holds everything).
        """
        window = self._window_batches(strings)
        if not self.follow:
            yield from window
            return
        stopper = self.stopper or Stopper(self.limits)
        starts = {p: end for p, (_, end) in self._window.partitions.items()}
        new = follow(
            self._config,
            self.topic,
            starts,
            stopper,
            strings=strings,
            decoder=self.pipeline.decoder(),
        )
        for batch in chain(window, new):
            remaining = stopper.remaining
            if remaining is not None and len(batch) > remaining:
                batch = batch.take(0, remaining)
            if len(batch):
                yield batch
            stopper.add(len(batch))
            if stopper.done:
                return

    def _window_batches(self, strings: bool) -> Iterator[CleanBatch]:
        if self._cache is not None:
            yield from rebatch(self._cache, self.batch_size)
            return
        if not self.cached:
            yield from rebatch(self._read(strings, self.readahead_bytes), self.batch_size)
            return
        chunks: list[CleanBatch] = []
        yield from rebatch(_collect(self._read(True, None), chunks), self.batch_size)
        self._cache = chunks  # only after a full pass: an abandoned pass caches nothing

    def _read(self, strings: bool, readahead: int | None) -> Iterator[CleanBatch]:
        reader = WindowReader(
            self._config,
            self._window,
            strings=strings,
            readahead_bytes=readahead,
            timeout=self.timeout,
            decoder=self.pipeline.decoder(),
        )
        started = time.perf_counter()
        yield from reader
        self.kafka_reads += 1
        self.last_read_records = reader.records
        self.last_read_seconds = time.perf_counter() - started
        logger.info(
            "read %d records of %s in %.2fs",
            reader.records,
            self._window.topic,
            self.last_read_seconds,
        )

    def _all(self, strings: bool) -> list[CleanBatch]:
        if self.follow:
            raise DatasetError("a follow=True dataset is unbounded: iterate it instead")
        if self._cache is None and self.cached:
            for _ in self._window_batches(True):
                pass
        if self._cache is not None:
            if len(self._cache) > 1:
                self._cache = [concat(self._cache)]
            return self._cache
        return list(self._read(strings, None))

    # ---- adapters ---------------------------------------------------------------------------

    def to_numpy(self) -> CleanBatch:
        """Every record of the window in one `CleanBatch` (numbers in one structured array).

        Example:
            >>> batch = ds.to_numpy()  # doctest: +SKIP
            >>> batch.numeric["speed"].mean(), batch.label[:3]  # doctest: +SKIP
            (21.7, [None, None, 'battery'])
        """
        chunks = self._all(True)
        return concat(chunks) if chunks else empty_batch(self.schema)

    def features(self, dtype: type[np.floating] = np.float32) -> np.ndarray:
        """The feature matrix of the window, shape ``(records, len(feature_names))``.

        Without a cache this reads only the numbers (strings are skipped).
        """
        chunks = self._all(False)
        if not chunks:
            return np.empty((0, len(self.feature_names)), dtype=dtype)
        if len(chunks) == 1:
            return chunks[0].features(dtype)
        # One pass: each chunk cast straight into its rows (no per-chunk copy concatenated).
        out = np.empty((sum(len(c) for c in chunks), len(self.feature_names)), dtype)
        start = 0
        for chunk in chunks:
            chunk.features(dtype, out=out[start : start + len(chunk)])
            start += len(chunk)
        return out

    def to_pandas(self) -> pd.DataFrame:
        """The window as a DataFrame with the schema's columns, in schema order.

        The time stays int64 milliseconds since the epoch (``pd.to_datetime(df.ts, unit="ms",
        utc=True)`` makes times of it).
        """
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        batch = self.to_numpy()
        columns: dict[str, Any] = {}
        for name in self.schema.field_names:
            if name in batch.strings:
                columns[name] = batch.strings[name]
            elif name in (batch.numeric.dtype.names or ()):
                columns[name] = batch.numeric[name]
        return pd.DataFrame(columns)

    def feature_batches(
        self,
        batch_size: int = 256,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
        dtype: type[np.floating] = np.float32,
    ) -> Iterator[np.ndarray]:
        """One epoch of training batches of features (what the framework adapters serve).

        Shuffling: a cached window is permuted as a whole each epoch; a streamed one is
        permuted within each `batch_size` read batch (a block shuffle; make ``batch_size``
        large for a good mix). With a ``seed`` the epochs are reproducible run to run.
        """
        rng = np.random.default_rng(seed)
        return _train_batches(self, batch_size, shuffle, rng, dtype)

    def to_tf_dataset(
        self,
        batch_size: int = 256,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
        pairs: bool = True,
    ) -> Any:
        """A ``tf.data.Dataset`` of float32 feature batches, re-iterable for several epochs.

        Args:
            batch_size: records per training batch.
            shuffle: shuffle records (see `feature_batches`); every epoch differs.
            seed: makes the shuffles reproducible; ``None``: different every run.
            pairs: yield ``(x, x)`` pairs, what ``keras.Model.fit`` wants for an autoencoder
                (this project's model); ``False``: ``x`` only.

        Example:
            >>> model.fit(ds.to_tf_dataset(), epochs=10)  # doctest: +SKIP
        """
        rng = np.random.default_rng(seed)
        block = tf_block(batch_size)

        def epoch() -> Iterator[np.ndarray]:
            return _train_batches(self, block, shuffle, rng, np.float32)

        return tf_dataset_of_blocks(epoch, len(self.feature_names), batch_size, pairs=pairs)

    def to_torch(
        self,
        batch_size: int = 256,
        *,
        shuffle: bool = True,
        seed: int | None = 0,
    ) -> Any:
        """A PyTorch ``IterableDataset`` of float32 feature batches (tensors).

        Batches come ready-made: use ``DataLoader(ds.to_torch(), batch_size=None)``. Reading
        already runs in librdkafka's threads, so ``num_workers=0`` is the right choice; with
        more workers each one reads the window and keeps every n-th batch.

        Example:
            >>> loader = DataLoader(ds.to_torch(256), batch_size=None)  # doctest: +SKIP
        """
        import torch  # type: ignore[import-not-found, unused-ignore]
        from torch.utils.data import (  # type: ignore[import-not-found, unused-ignore]
            IterableDataset,
            get_worker_info,
        )

        dataset = self
        rng = np.random.default_rng(seed)

        class KafkaIterable(IterableDataset):  # type: ignore[misc]
            def __iter__(self) -> Iterator[Any]:
                info = get_worker_info()
                workers, me = (1, 0) if info is None else (info.num_workers, info.id)
                batches = _train_batches(dataset, batch_size, shuffle, rng, np.float32)
                for i, batch in enumerate(batches):
                    if i % workers == me:
                        yield torch.from_numpy(batch)

        return KafkaIterable()


def _check_same_cluster(kafka: KafkaSettings, window: ResolvedWindow, timeout: float) -> None:
    """A window's offsets are its cluster's own: refuse to read them on another cluster."""
    if window.cluster_id is None:  # resolved before lineages named their cluster
        return
    from lakeless.kafka._clients import cluster_metadata

    found = cluster_metadata(kafka, min(timeout, 10.0)).cluster_id
    if found and found != window.cluster_id:
        where = f" ({window.bootstrap_servers})" if window.bootstrap_servers else ""
        raise DatasetError(
            f"the window of {window.topic} was resolved on Kafka cluster {window.cluster_id}"
            f"{where}, but {kafka.bootstrap_servers} is cluster {found}: offsets differ between "
            "clusters (a MirrorMaker replica numbers the same records differently); read it "
            "where it was resolved, or resolve a new window here"
        )


def consumer_config_for(
    kafka: KafkaSettings, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The reader's librdkafka config (see `lakeless.dataset.READ_CONFIG`)."""
    return consumer_config(kafka, overrides or {})


def _collect(chunks: Iterable[CleanBatch], into: list[CleanBatch]) -> Iterator[CleanBatch]:
    for chunk in chunks:
        into.append(chunk)
        yield chunk


def tf_block(batch_size: int) -> int:
    """Rows per block that `tf_dataset_of_blocks` is handed: a multiple of ``batch_size``."""
    return max(batch_size, (_TF_BLOCK // batch_size) * batch_size)


def tf_dataset_of_blocks(
    blocks: Callable[[], Iterator[np.ndarray]], features: int, batch_size: int, *, pairs: bool
) -> Any:
    """The ``tf.data`` pipeline of `KafkaDataset.to_tf_dataset` over any float32 block source.

    Python hands tf.data large shuffled blocks (``blocks()`` starts an epoch) and tf.data cuts
    them into training batches in C++ (``rebatch``): one generator call per block rather than
    per batch, which was the bottleneck with small training batches. Up to
    `_TF_PREFETCH_BLOCKS` blocks are read ahead, so reading overlaps training. The benchmark
    runs the same pipeline over rows in memory, as the ceiling of tf.data itself.
    """
    import tensorflow as tf

    spec = tf.TensorSpec(shape=(None, features), dtype=tf.float32)
    data = tf.data.Dataset.from_generator(blocks, output_signature=spec)
    data = data.prefetch(_TF_PREFETCH_BLOCKS).rebatch(batch_size)
    if pairs:
        data = data.map(lambda x: (x, x))
    return data.prefetch(tf.data.AUTOTUNE)


def _train_batches(
    dataset: KafkaDataset,
    batch_size: int,
    shuffle: bool,
    rng: np.random.Generator,
    dtype: type[np.floating],
) -> Iterator[np.ndarray]:
    if batch_size < 1:
        raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
    if dataset.cached and not dataset.follow:
        x = dataset.features(dtype)
        order = rng.permutation(len(x)) if shuffle else None
        for start in range(0, len(x), batch_size):
            yield (
                x[start : start + batch_size]
                if order is None
                else x[order[start : start + batch_size]]
            )
        return
    for batch in dataset.batches(strings=False):
        x = batch.features(dtype)
        if shuffle:
            x = x[rng.permutation(len(x))]
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]
