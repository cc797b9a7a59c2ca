"""The model a server scores with, and the thread that keeps it the registry's live version.

`LiveModel` holds one `Served` (a record and its scorer) behind a single reference: a request
reads it once and uses that model from start to end, and a swap replaces the reference between
two requests (assigning an attribute is atomic in Python), so no request ever sees half a model.

`RegistryWatcher` is a daemon thread that calls `lakeless.registry.RegistryFollower.poll` every
``poll_interval`` seconds and offers each newly live, validated model to the `LiveModel`; a model
refused by the follower (checksum, schema, ONNX contract) or by the scorer factory is logged and
the current one keeps serving.

Example:
    >>> from lakeless.registry import build_record
    >>> from lakeless.testing.models import FEATURES, make_test_onnx
    >>> live = LiveModel()
    >>> live.current is None
    True
    >>> live.offer(build_record("m", 1, make_test_onnx(), threshold=2.0, features=FEATURES))
    True
    >>> live.current.record.ref
    'm:1'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.model.onnx import ModelLoadError
from lakeless.model.scoring import BatchScorer, OnnxScorerFactory, ScorerFactory
from lakeless.registry import ModelRecord, ModelSummary, RegistryFollower

__all__ = ["LiveModel", "RegistryWatcher", "Served"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """A model being served: its record (without the ONNX bytes) and its scorer."""

    record: ModelSummary
    scorer: BatchScorer


class LiveModel:
    """The model scoring requests now (``None`` until a first one is offered).

    Args:
        factory: builds the scorer of each offered record (`OnnxScorerFactory` by default).

    Attributes:
        swaps: models taken so far.
        refused: models the factory refused so far.
    """

    def __init__(self, factory: ScorerFactory | None = None) -> None:
        self.factory: ScorerFactory = factory or OnnxScorerFactory()
        self.current: Served | None = None
        self.swaps = 0
        self.refused = 0

    def offer(self, record: ModelRecord) -> bool:
        """Build ``record``'s scorer and make it current; ``False`` (logged) when refused."""
        previous = self.current
        keeping = previous.record.ref if previous else "no model"
        try:
            scorer = self.factory(record)
        except ModelLoadError as exc:
            self.refused += 1
            logger.error("refused model %s: %s (keeping %s)", record.ref, exc, keeping)
            return False
        self.current = Served(record.summary(), scorer)
        self.swaps += 1
        logger.info(
            "serving model %s (threshold %g)%s",
            record.ref,
            record.threshold,
            f", replacing {previous.record.ref}" if previous else "",
        )
        return True


class RegistryWatcher(threading.Thread):
    """Follows model ``name`` on the registry and offers every new live version to ``live``.

    The follower is created (the registry log read, the live model loaded) by the constructor,
    so a missing registry topic fails there, in the caller's thread.

    Args:
        settings: Kafka connection and topic names.
        name: the model to follow.
        live: where newly live models go.
        features: the pipeline's features (a model with other inputs is refused).
        pipeline: the pipeline served (a model of another one is refused).
        poll_interval: seconds between two registry polls.
        timeout: seconds the catch-up, or loading one model, may take.

    Raises:
        lakeless.registry.RegistryError: the registry is missing or unreadable.
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        live: LiveModel,
        *,
        features: Sequence[str],
        pipeline: str | None = None,
        poll_interval: float = 0.5,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(name=f"registry-watcher-{name}", daemon=True)
        self.live = live
        self.poll_interval = poll_interval
        self._stop_event = threading.Event()
        self.follower = RegistryFollower(
            settings, name, features=features, pipeline=pipeline, timeout=timeout
        )
        if self.follower.current is not None:
            live.offer(self.follower.current)

    def run(self) -> None:
        """Poll until `stop`; the follower is closed on the way out."""
        try:
            while not self._stop_event.wait(self.poll_interval):
                try:
                    record = self.follower.poll()
                except KafkaError as exc:
                    logger.error("registry follower failed, retrying: %s", exc)
                    continue
                if record is not None:
                    self.live.offer(record)
        finally:
            self.follower.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and wait for the thread (closes the follower)."""
        self._stop_event.set()
        if self.ident is not None:  # started: run() closes the follower
            self.join(timeout)
        else:
            self.follower.close()
