"""`RegistryFollower`: what a scorer or server uses to follow the live version of one model.

On creation it reads the whole registry log and takes the live version of its model. Then the
caller calls `RegistryFollower.poll` between two batches: it reads whatever arrived without
waiting, and when another version has become live it loads and validates it and returns it; the
caller swaps models there, so a batch is always scored by one model.

A model that fails `lakeless.registry.validate` (checksum, another pipeline, inputs that are not
features of the pipeline's schema, ONNX that does not load or breaks the contract, a
``format_version`` this code does not know) is refused
with an ERROR log line ``refused model NAME vN: <reason>`` and the current model keeps scoring;
the refused version is tried again only if it is promoted again. A record that does not even
decode is skipped with a WARNING naming ``topic[0]@offset``.

At start-up, if the live version is refused, the follower falls back to the newest version that
was live before it and passes validation, so a restarted scorer keeps scoring with the same model
as the scorers that refused the promotion while running.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec
from confluent_kafka import TopicPartition

from lakeless._mixins import Closing
from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.registry._errors import ModelRejected, RecordFormatError, RegistryError
from lakeless.registry._log import fetch_entry, fold, fold_message, registry_reader
from lakeless.registry._record import ModelRecord, StageChange
from lakeless.registry._validate import resolve_bytes, validate

__all__ = ["RegistryFollower"]

logger = logging.getLogger(__name__)


class RegistryFollower(Closing):
    """Follows the live version of model ``name`` on the registry topic.

    Args:
        settings: Kafka connection and topic names (``topics.models``).
        name: the model to follow.
        features: the features of the pipeline's current schema; a model whose inputs are not
            among them is refused.
        pipeline: the pipeline the caller reads; a model of another pipeline is refused.
        timeout: seconds the initial catch-up, or loading one promoted model, may take.
        max_records: most registry records one `poll` reads.

    Attributes:
        current: the live, validated model (ONNX bytes always inline), or ``None`` until one is
            promoted.
        state: the fold of the log read so far.
        refused: version -> why it was refused (until promoted again).

    Raises:
        RegistryError: the registry topic is missing or the catch-up did not finish in time.
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        features: Sequence[str],
        pipeline: str | None = None,
        timeout: float = 30.0,
        max_records: int = 100,
    ) -> None:
        self.settings = settings
        self.name = name
        self.features = tuple(features)
        self.pipeline = pipeline
        self.timeout = timeout
        self.max_records = max_records
        self.topic = settings.topics.models
        self.current: ModelRecord | None = None
        self.refused: dict[int, ModelRejected] = {}
        # Following the tail, the broker may hold a fetch up to 0.5 s: polls never wait for it.
        #: The registry's cluster (``settings.registry.bootstrap_servers``, else the data's).
        self.kafka = settings.registry.kafka(settings.kafka)
        self._reader = registry_reader(self.kafka, self.topic, timeout, fetch_wait_max_ms=500)
        try:
            self.state = fold(self._reader)
            self._catch_up()
            self._reader.consumer.assign([TopicPartition(self.topic, 0, self.state.end)])
        except BaseException:
            self._reader.close()
            raise

    def close(self) -> None:
        """Close the consumer."""
        self._reader.close()

    def _catch_up(self) -> None:
        history = self.state.live_history.get(self.name, [])
        tried: set[int] = set()
        for version in reversed(history):
            if version in tried:
                continue
            tried.add(version)
            record = self._load(version)
            if record is not None:
                self.current = record
                if version != self.state.live_version(self.name):
                    logger.warning(
                        "model %s: scoring with v%d, the newest valid version that was live",
                        self.name,
                        version,
                    )
                logger.info("model %s: v%d is live (%s)", self.name, version, record.sha256[:12])
                return
        if not history:
            logger.info("model %s has no live version yet", self.name)

    def poll(self) -> ModelRecord | None:
        """Read new registry records without waiting; return the new live model, if any.

        Only when another version became live does it block, to read and check that model
        (a fresh consumer reads one record; ONNX Runtime loads it once): well under a second
        for models of a few MB, bounded by ``timeout``.

        Returns:
            The model that became live and passed validation (now `current`); ``None`` when
            nothing changed or the new live version was refused (see the module docstring).

        Raises:
            KafkaError: the consumer hit a fatal error.
        """
        for message in self._reader.consumer.consume(self.max_records, timeout=0):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaError(f"registry follower on {self.topic}: {error.str()}")
                logger.debug("registry follower on %s: %s", self.topic, error.str())
                continue
            entry = fold_message(self.state, message)
            if isinstance(entry, StageChange) and entry.name == self.name:
                self.refused.pop(entry.version, None)  # promoted again: worth another try
        live = self.state.live_version(self.name)
        if live is None or live in self.refused:
            return None
        if self.current is not None and live == self.current.version:
            return None
        record = self._load(live)
        if record is None:
            return None
        previous = self.current
        self.current = record
        logger.info(
            "model %s: v%d is live (%s), replacing %s",
            self.name,
            live,
            record.sha256[:12],
            f"v{previous.version}" if previous else "nothing",
        )
        return record

    def _load(self, version: int) -> ModelRecord | None:
        """The validated record of ``version``; ``None`` (logged) when refused or unreadable."""
        offset = self.state.offsets[(self.name, version)]
        keeping = f"v{self.current.version}" if self.current else "no model"
        try:
            try:
                entry = fetch_entry(self.kafka, self.topic, offset, self.timeout)
            except RecordFormatError as exc:
                raise ModelRejected("format", str(exc)) from exc
            if not isinstance(entry, ModelRecord):
                raise ModelRejected("format", f"{self.topic}[0]@{offset} is not a model record")
            record = resolve_bytes(entry)
            validate(record, self.features, self.pipeline)
            record = msgspec.structs.replace(record, stage=self.state.stage(self.name, version))
        except ModelRejected as exc:
            self.refused[version] = exc
            logger.error(
                "refused model %s v%d: %s (%s[0]@%d; keeping %s)",
                self.name,
                version,
                exc.detail,
                self.topic,
                offset,
                keeping,
            )
            return None
        except RegistryError as exc:  # e.g. a timeout: try again at the next poll
            logger.warning("cannot load model %s v%d yet: %s", self.name, version, exc)
            return None
        return record
