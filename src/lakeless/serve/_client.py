"""The model-server client for the score stage: ``lakeless score --via URL``.

`HttpScorerFactory` plugs into the stage's `lakeless.score.ScorerFactory` seam. Its `HttpScorer`
sends each batch as one ``POST /score/batch`` in the raw float32 form of `lakeless.serve._wire`
over a keep-alive httpx connection, and gets every row's score and per-feature errors back, so
the stage names the top features of an anomaly exactly as with the embedded model.

The server follows the registry on its own and may be on another version than the stage's own
follower: `HttpScorer` is a `lakeless.score.RemoteScorer`, and the stage writes the model name,
version and threshold the server sent with each batch into the outputs (never its own record's).
The stage still waits for its follower to see a live model before it reads a batch; both follow
the same registry topic, so that is the same moment.

When the server is unreachable or has no live model yet (503), a batch is retried with backoff
for ``retry_for`` seconds, then `ModelServerError` stops the stage without committing the batch
(it is scored again after a restart).

Example:
    >>> factory = HttpScorerFactory("http://127.0.0.1:8000")
    >>> factory.url
    'http://127.0.0.1:8000'
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from lakeless.errors import LakelessError
from lakeless.model.scoring import BatchScorer, ScoredBy
from lakeless.registry import ModelRecord
from lakeless.serve._wire import (
    FEATURES_TYPE,
    MODEL_HEADER,
    SCORES_TYPE,
    THRESHOLD_HEADER,
    VERSION_HEADER,
    WireFormatError,
    decode_scores,
    encode_features,
)

__all__ = ["HttpScorer", "HttpScorerFactory", "ModelServerError"]

logger = logging.getLogger(__name__)

_HEADERS = {"content-type": FEATURES_TYPE, "accept": SCORES_TYPE}


class ModelServerError(LakelessError):
    """The model server did not score a batch (unreachable, no model, or an error answer)."""


class HttpScorer:
    """Scores batches with ``POST {url}/score/batch`` (a `lakeless.score.RemoteScorer`).

    Args:
        client: the keep-alive HTTP client (shared by the scorers of one factory).
        url: the server's base URL.
        n_features: feature columns per row.
        retry_for: seconds a batch is retried while the server is unreachable or has no model.

    Attributes:
        scored_by: the model the server used for the last batch.
    """

    def __init__(
        self, client: httpx.Client, url: str, n_features: int, retry_for: float = 30
    ) -> None:
        self.client = client
        self.endpoint = f"{url.rstrip('/')}/score/batch"
        self.n_features = n_features
        self.retry_for = retry_for
        self.scored_by: ScoredBy | None = None

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[n]`` and per-feature errors ``[n, f]`` from the server.

        Raises:
            ModelServerError: no answer within ``retry_for`` seconds, or an error answer.
        """
        response = self._post(encode_features(features))
        try:
            scores, errors = decode_scores(response.content, self.n_features)
            headers = response.headers
            scored_by = ScoredBy(
                headers[MODEL_HEADER],
                int(headers[VERSION_HEADER]),
                float(headers[THRESHOLD_HEADER]),
            )
        except (KeyError, ValueError, WireFormatError) as exc:
            raise ModelServerError(f"{self.endpoint}: malformed answer: {exc}") from exc
        if len(scores) != len(features):
            raise ModelServerError(
                f"{self.endpoint}: {len(scores)} scores for {len(features)} events"
            )
        self.scored_by = scored_by
        return scores, errors

    def _post(self, body: bytes) -> httpx.Response:
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            try:
                response = self.client.post(self.endpoint, content=body, headers=_HEADERS)
                if response.status_code == 200:
                    return response
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 503:
                    raise ModelServerError(f"{self.endpoint} refused a batch: {problem}")
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                raise ModelServerError(
                    f"{self.endpoint} did not score a batch in {self.retry_for:g} s ({problem})"
                )
            logger.warning("model server not ready (%s); retrying in %.1f s", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@dataclass
class HttpScorerFactory:
    """A `lakeless.score.ScorerFactory` that scores through a ``lakeless serve`` server.

    The record it is called with is not used to score (the server picks its own live model);
    every scorer it builds shares one keep-alive client, created in the process that uses it
    (the factory is pickled into each ``--processes`` worker without it).

    Attributes:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        timeout: seconds one request may take.
        retry_for: seconds a batch is retried while the server is down or has no model.
    """

    url: str
    timeout: float = 30.0
    retry_for: float = 30.0
    _client: httpx.Client | None = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, record: ModelRecord) -> BatchScorer:
        """An `HttpScorer` (``record`` only triggers it: the server has its own follower)."""
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return HttpScorer(self._client, self.url, len(record.features), self.retry_for)

    def close(self) -> None:
        """Close the shared connection."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        return state
