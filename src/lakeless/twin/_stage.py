"""The twin stage's loop: ``sensor-clean`` + ``anomalies`` -> `TwinStore`.

`TwinStage.run` repeats one synchronous cycle per batch:

1. ``consume`` up to ``batch_size`` records from both topics (one consumer group,
   ``lakeless-twin`` by default, subscribed to ``topics.clean`` and ``topics.anomalies``,
   ``read_committed`` so aborted outputs of an exactly-once scorer are never applied);
2. dispatch by topic: readings decode with one ``numpy.frombuffer``
   (`lakeless.schema.decode_clean_batch`), anomalies as JSON (`lakeless.score.decode_anomaly`);
   a record that does not decode is logged as ``topic[partition]@offset`` and skipped;
3. `TwinStore.apply`: the whole batch in one database transaction;
4. after the transaction committed, commit ``last offset + 1`` of every partition of the batch.

Delivery: at-least-once, and a batch applied twice (a crash between the database commit and the
Kafka commit, a rebalance, a replay by a new group) changes nothing, because every write is keyed
by ``(car_id, seq)`` and only moves a car's state forward; so the twin holds what exactly-once
processing would give. A rebalance needs no special care: nothing is in flight while ``consume``
runs (where librdkafka calls the rebalance callbacks).

Example:
    >>> TwinSettings().group_id
    'lakeless-twin'
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from confluent_kafka import Message, TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import ConsumeErrors, commit_sync, make_consumer, next_offsets
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.schema import CLEAN_DTYPE, CLEAN_VERSION, CleanBatch, decode_clean_batch
from lakeless.score._output import Anomaly, decode_anomaly
from lakeless.twin._store import (
    DEFAULT_EPISODE_GAP_MS,
    DEFAULT_KEEP_ANOMALIES,
    DEFAULT_KEEP_READINGS,
    TwinError,
    TwinStore,
)

__all__ = ["DEFAULT_BATCH_SIZE", "TwinError", "TwinSettings", "TwinStage", "TwinStats", "run_twin"]

logger = logging.getLogger(__name__)

#: Records per batch (one database transaction and one Kafka commit each).
DEFAULT_BATCH_SIZE: Final = 5000

_MIN_CLEAN_LEN: Final = 1 + CLEAN_DTYPE.itemsize + 6
#: What a malformed ``sensor-clean`` record raises while decoding.
_DECODE_ERRORS: Final = (ValueError, TypeError, IndexError, struct.error, AssertionError)


class TwinKafkaError(KafkaError):
    """The twin cannot go on: a fatal Kafka error."""


class TwinSettings(BaseSettings):
    """The twin's own settings, from ``LAKELESS_TWIN__*`` (e.g. ``LAKELESS_TWIN__URL``).

    Attributes:
        url: the database: ``sqlite:///path``, ``postgresql://...``; ``None``:
            ``sqlite:///<data_dir>/twin.sqlite``.
        group_id: consumer group.
        batch_size: most records per batch (and per database transaction).
        poll_timeout: seconds one ``consume`` waits for the first record.
        keep_readings: readings kept per car.
        keep_anomalies: anomaly records kept per car.
        episode_gap_ms: event-time gap that ends a failure episode.
        join_timeout: seconds ``until_idle`` waits for the first assignment before counting.
    """

    model_config = SettingsConfigDict(env_prefix="LAKELESS_TWIN__", frozen=True, extra="forbid")

    url: str | None = None
    group_id: str = Field(default="lakeless-twin", min_length=1)
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=100_000)
    poll_timeout: float = Field(default=0.5, gt=0)
    keep_readings: int = Field(default=DEFAULT_KEEP_READINGS, ge=1)
    keep_anomalies: int = Field(default=DEFAULT_KEEP_ANOMALIES, ge=1)
    episode_gap_ms: int = Field(default=DEFAULT_EPISODE_GAP_MS, ge=0)
    join_timeout: float = Field(default=60.0, gt=0)

    def database_url(self, settings: Settings) -> str:
        """`url`, or the default SQLite file under ``settings.data_dir``."""
        if self.url:
            return self.url
        return f"sqlite:///{settings.data_dir / 'twin.sqlite'}"

    def open_store(self, settings: Settings) -> TwinStore:
        """Open the database with these retention and episode settings."""
        return TwinStore.open(
            self.database_url(settings),
            keep_readings=self.keep_readings,
            keep_anomalies=self.keep_anomalies,
            episode_gap_ms=self.episode_gap_ms,
        )


@dataclass
class TwinStats:
    """Counts of applied and committed work over every run of one `TwinStage`."""

    readings: int = 0
    anomalies: int = 0
    #: Of those, stored for the first time (the rest were replays or older than the window).
    new_readings: int = 0
    new_anomalies: int = 0
    #: Records that did not decode: logged with their location and skipped.
    invalid: int = 0
    batches: int = 0
    #: Commits refused because the group rebalanced (their records are applied again: harmless).
    commit_failures: int = 0
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def rate(self) -> float:
        """Records per wall second."""
        return (self.readings + self.anomalies) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every count plus ``rate``."""
        return {
            "readings": self.readings,
            "anomalies": self.anomalies,
            "new_readings": self.new_readings,
            "new_anomalies": self.new_anomalies,
            "invalid": self.invalid,
            "batches": self.batches,
            "commit_failures": self.commit_failures,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "stopped_by": self.stopped_by,
        }

    def to_json(self) -> str:
        """`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict())


class TwinStage:
    """Keeps the twin from ``sensor-clean`` and ``anomalies``; `run` until a limit.

    Args:
        settings: connections and topics (``topics.clean``, ``topics.anomalies``, ``data_dir``).
        twin: the stage's own settings (``TwinSettings()`` reads ``LAKELESS_TWIN__*``).
        store: write to this open store instead of opening ``twin.url`` (not closed by `run`).

    Attributes:
        stats: counts over every run of this object.
    """

    def __init__(
        self,
        settings: Settings,
        twin: TwinSettings | None = None,
        *,
        store: TwinStore | None = None,
    ) -> None:
        self.settings = settings
        self.config = twin or TwinSettings()
        self.stats = TwinStats()
        self._store = store
        self._stopper: Stopper | None = None
        self._joined = False
        self._errors = ConsumeErrors(TwinKafkaError)

    def request_stop(self) -> None:
        """Ask a running `run` to stop after its current batch (thread-safe)."""
        if self._stopper is not None:
            self._stopper.request_stop()

    def run(self, limits: RunLimits | None = None) -> TwinStats:
        """Apply batches until a limit in ``limits`` is reached or SIGTERM/SIGINT arrives.

        ``limits.count`` counts records read from both topics; ``until_idle`` counts from the
        last record or the last assignment (before the first one, up to ``join_timeout``).

        Returns:
            `stats`.

        Raises:
            TwinError: the database cannot be opened or refused a batch (whose offsets are
                then not committed).
            lakeless.errors.KafkaError: a fatal Kafka error.
        """
        stopper = self._stopper = Stopper(limits)
        config = self.config
        started = time.monotonic()
        store = self._store or config.open_store(self.settings)
        topics = [self.settings.topics.clean, self.settings.topics.anomalies]
        consumer = make_consumer(
            self.settings.kafka, config.group_id, isolation_level="read_committed"
        )
        self._joined = False
        try:
            logger.info("twin: %s -> %r (group %s)", " + ".join(topics), store, config.group_id)
            consumer.subscribe(
                topics,
                on_assign=lambda _c, parts: self._on_assign(stopper, parts),
                on_revoke=lambda _c, parts: logger.info("revoked %s", _describe(parts)),
                on_lost=lambda _c, parts: logger.info("lost %s", _describe(parts)),
            )
            with stop_on_signals(stopper):
                while True:
                    if not self._joined and time.monotonic() - started < config.join_timeout:
                        stopper.saw_input()
                    if stopper.done:
                        break
                    remaining = stopper.remaining
                    wanted = (
                        config.batch_size
                        if remaining is None
                        else min(config.batch_size, remaining)
                    )
                    messages = self._consume(consumer, wanted)
                    if messages:
                        self._process(messages, store, consumer)
                        stopper.add(len(messages))
            self.stats.stopped_by = stopper.reason or "stopped"
            logger.info("twin stopping (%s): %s", self.stats.stopped_by, self.stats.to_json())
        finally:
            self.stats.seconds += time.monotonic() - started
            self._stopper = None
            consumer.close()
            if self._store is None:
                store.close()
        return self.stats

    # ---- one batch ----------------------------------------------------------------------------

    def _consume(self, consumer: Any, wanted: int) -> list[Message]:
        messages = self._errors.consume(consumer, wanted, self.config.poll_timeout)
        self._joined = self._joined or self._errors.seen  # e.g. a missing topic
        return messages

    def _process(self, messages: list[Message], store: TwinStore, consumer: Any) -> None:
        clean = self.settings.topics.clean
        readings: list[Message] = []
        anomalies: list[Anomaly] = []
        invalid = 0
        for message in messages:
            if message.topic() == clean:
                readings.append(message)
                continue
            try:
                anomalies.append(decode_anomaly(message.value()))
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                invalid += 1
                _log_invalid(message, exc)
        batch, bad = _decode_readings(readings)
        result = store.apply(batch, anomalies)
        self._commit(consumer, messages)
        stats = self.stats
        stats.readings += len(batch)
        stats.anomalies += len(anomalies)
        stats.new_readings += result.new_readings
        stats.new_anomalies += result.new_anomalies
        stats.invalid += invalid + bad
        stats.batches += 1

    def _commit(self, consumer: Any, messages: Sequence[Message]) -> None:
        # A rebalanced-away batch is applied again by the new owner, which changes nothing.
        if not commit_sync(consumer, next_offsets(messages), len(messages), TwinKafkaError):
            self.stats.commit_failures += 1

    def _on_assign(self, stopper: Stopper, partitions: list[TopicPartition]) -> None:
        self._joined = True
        stopper.saw_input()
        logger.info("assigned %s", _describe(partitions))


def _decode_readings(messages: list[Message]) -> tuple[CleanBatch, int]:
    """Decode the ``sensor-clean`` records of a batch; skip (and log) the ones that fail."""
    values = [m.value() for m in messages]
    try:
        return decode_clean_batch(values), 0
    except _DECODE_ERRORS:
        pass  # find the bad ones one by one (rare: preprocess only writes valid records)
    good: list[bytes] = []
    for message, value in zip(messages, values, strict=True):
        try:
            if not isinstance(value, bytes) or len(value) < _MIN_CLEAN_LEN:
                raise ValueError(f"not a sensor-clean v{CLEAN_VERSION} record")
            decode_clean_batch([value])
        except _DECODE_ERRORS as exc:
            _log_invalid(message, exc)
            continue
        good.append(value)
    return decode_clean_batch(good), len(values) - len(good)


def _log_invalid(message: Message, exc: Exception) -> None:
    logger.warning(
        "skipping %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), exc
    )


def _describe(partitions: list[TopicPartition]) -> str:
    if not partitions:
        return "no partitions"
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t}{sorted(p)}" for t, p in by_topic.items())


def run_twin(
    settings: Settings, twin: TwinSettings | None = None, limits: RunLimits | None = None
) -> TwinStats:
    """Run the twin once: ``TwinStage(settings, twin).run(limits)``."""
    return TwinStage(settings, twin).run(limits)
