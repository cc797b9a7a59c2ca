"""The model server's HTTP API (FastAPI): score one event or a batch with the live model.

Endpoints:

- ``POST /score``: one event, a JSON object with the 18 features of `lakeless.schema.FEATURES`
  (a whole `lakeless.schema.SensorEvent` works: other fields are ignored, except ``car_id``,
  ``ts`` and ``seq``, which are echoed) -> ``{score, threshold, anomaly, model, version,
  top_features}``;
- ``POST /score/batch``: JSON, either a list of such events or the compact
  ``{"features": [[18 floats], ...]}``, -> ``{model, version, threshold, scores, anomaly,
  top_features}`` (``top_features`` is empty for rows that are not anomalies; add
  ``?errors=true`` for every row's ``feature_errors``); or the raw float32 form of
  `lakeless.serve._wire` (``Content-Type: application/x-lakeless-features``), which is what
  ``lakeless score --via`` sends;
- ``GET /model``: the live model's name, version, threshold, sha256 and stage;
- ``GET /health``: ``{"status": "ok", "ready": <a model is live>, "model": "name:version"}``,
  always 200 (the process is alive); ``/model`` and the scoring endpoints answer 503 until a
  model is live.

JSON is read and written with msgspec (several times faster than the standard library on arrays
of floats), not with FastAPI's pydantic body parsing. A request reads the live model once and is
answered by that model alone; the registry watcher swaps models between requests.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from lakeless.registry import build_record
    >>> from lakeless.testing.models import make_test_onnx
    >>> app = create_app(None, ServeSettings(model="m"))
    >>> _ = app.state.live.offer(build_record("m", 1, make_test_onnx(bias=1.0), threshold=2.0))
    >>> with TestClient(app) as client:
    ...     client.post("/score/batch", json={"features": [[0.0] * 18]}).json()["scores"]
    [1.0]
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lakeless.config import Settings
from lakeless.lifecycle import Stopper
from lakeless.schema import FEATURES
from lakeless.score import OnnxScorerFactory, TopFeature, top_features
from lakeless.serve._models import LiveModel, RegistryWatcher, Served
from lakeless.serve._wire import (
    FEATURES_TYPE,
    MODEL_HEADER,
    SCORES_TYPE,
    THRESHOLD_HEADER,
    VERSION_HEADER,
    WireFormatError,
    decode_features,
    encode_scores,
)

__all__ = ["ServeSettings", "ServeStats", "create_app"]

_N: Final = len(FEATURES)
_JSON: Final = "application/json"

#: One event: the 18 features first (so ``astuple(...)[:18]`` is the feature row), then the
#: optional identifiers echoed in the answer; other fields of a sensor event are ignored.
_Event: Any = msgspec.defstruct(
    "ScoreRequest",
    [(name, float) for name in FEATURES]
    + [("car_id", str | None, None), ("ts", int | None, None), ("seq", int | None, None)],
    kw_only=True,
)


class _Columns(msgspec.Struct, forbid_unknown_fields=True):
    features: list[list[float]]


class _ScoreResponse(msgspec.Struct, omit_defaults=True):
    score: float
    threshold: float
    anomaly: bool
    model: str
    version: int
    top_features: list[TopFeature]
    car_id: str | None = None
    ts: int | None = None
    seq: int | None = None


class _BatchResponse(msgspec.Struct, omit_defaults=True):
    model: str
    version: int
    threshold: float
    scores: list[float]
    anomaly: list[bool]
    top_features: list[list[TopFeature]]
    feature_errors: list[list[float]] | None = None


_event_decoder: Final = msgspec.json.Decoder(_Event)
_events_decoder: Final = msgspec.json.Decoder(list[_Event])
_columns_decoder: Final = msgspec.json.Decoder(_Columns)
_encoder: Final = msgspec.json.Encoder()


class ServeSettings(BaseModel):
    """The model server's own settings (connections and topic names come from `Settings`).

    Attributes:
        model: registry name of the model to serve (its live version).
        host: interface to listen on.
        port: TCP port.
        top_k: features named per scored event (per anomaly in a batch).
        intra_op_threads: ONNX Runtime threads per inference.
        poll_interval: seconds between two registry polls (how soon a promotion is served).
        registry_timeout: seconds the registry catch-up or one model load may take.
        max_rows: most events one request may carry (413 beyond).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(default="car-autoencoder", min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    top_k: int = Field(default=3, ge=0, le=_N)
    intra_op_threads: int = Field(default=1, ge=0)
    poll_interval: float = Field(default=0.5, gt=0)
    registry_timeout: float = Field(default=30.0, gt=0)
    max_rows: int = Field(default=100_000, ge=1)


@dataclass
class ServeStats:
    """What a server answered.

    Attributes:
        requests: scoring requests answered with scores.
        events: events scored.
        rejected: scoring requests refused (bad input: 4xx).
        unavailable: scoring requests answered 503 (no live model).
        by_model: events scored per ``name:version``.
        seconds: wall time served.
        stopped_by: why the server stopped.
    """

    requests: int = 0
    events: int = 0
    rejected: int = 0
    unavailable: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def rate(self) -> float:
        """Events per second over `seconds`."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "requests": self.requests,
            "events": self.events,
            "rejected": self.rejected,
            "unavailable": self.unavailable,
            "by_model": dict(self.by_model),
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "stopped_by": self.stopped_by,
        }


def create_app(
    settings: Settings | None,
    config: ServeSettings | None = None,
    *,
    live: LiveModel | None = None,
    stopper: Stopper | None = None,
) -> FastAPI:
    """The model server's ASGI app.

    Args:
        settings: Kafka and topics; the app follows ``config.model`` on the registry while it
            runs (from its lifespan start). ``None``: no registry, serve what is offered to
            ``app.state.live`` (tests, a fixed model).
        config: the server's settings.
        live: the model holder (a new `LiveModel` with `OnnxScorerFactory` by default).
        stopper: told about every scoring request (``add(1)``), for ``--count`` and
            ``--until-idle``.

    Returns:
        The app; ``app.state`` has ``live`` (`LiveModel`), ``stats`` (`ServeStats`) and, once
        started with ``settings``, ``watcher`` (`RegistryWatcher`).
    """
    config = config or ServeSettings()
    live = live or LiveModel(OnnxScorerFactory(config.intra_op_threads))
    stats = ServeStats()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher: RegistryWatcher | None = None
        started = time.monotonic()
        if settings is not None:
            try:
                watcher = await run_in_threadpool(
                    RegistryWatcher,
                    settings,
                    config.model,
                    live,
                    poll_interval=config.poll_interval,
                    timeout=config.registry_timeout,
                )
            except Exception as exc:
                app.state.startup_error = exc  # uvicorn only logs it: `run_serve` raises it
                raise
            watcher.start()
            app.state.watcher = watcher
        if stopper is not None:
            stopper.saw_input()  # idle counts from when the server is ready
        try:
            yield
        finally:
            stats.seconds += time.monotonic() - started
            if watcher is not None:
                await run_in_threadpool(watcher.stop)

    app = FastAPI(
        title="lakeless model server",
        summary="Scores sensor events with the registry's live model (hot-swapped).",
        lifespan=lifespan,
    )
    app.state.live = live
    app.state.stats = stats
    app.state.startup_error = None

    def served() -> Served:
        current = live.current
        if current is None:
            stats.unavailable += 1
            raise HTTPException(503, f"no live version of model {config.model!r} yet")
        return current

    def rejected(status: int, detail: str) -> HTTPException:
        stats.rejected += 1
        return HTTPException(status, detail)

    def scored(model: Served, rows: int) -> None:
        stats.requests += 1
        stats.events += rows
        stats.by_model[model.record.ref] += rows
        if stopper is not None:
            stopper.add(1)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness; ``ready`` once a model is live."""
        current = live.current
        return {
            "status": "ok",
            "ready": current is not None,
            "model": current.record.ref if current else None,
        }

    @app.get("/model")
    def model() -> dict[str, Any]:
        """The live model (503 until there is one)."""
        record = served().record
        return {
            "name": record.name,
            "version": record.version,
            "threshold": record.threshold,
            "sha256": record.sha256,
            "stage": record.stage,
            "created_at": record.created_at,
            "features": list(record.features),
            "swaps": live.swaps,
        }

    @app.post("/score")
    async def score_one(request: Request) -> Response:
        """Score one event (JSON object with the 18 features)."""
        body = await request.body()
        try:
            event = _event_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise rejected(400, f"not a sensor event: {exc}") from exc
        current = served()
        row = np.array([msgspec.structs.astuple(event)[:_N]], np.float32)
        scores, errors = current.scorer.score(row)
        record = current.record
        score = float(scores[0])
        answer = _ScoreResponse(
            score=score,
            threshold=record.threshold,
            anomaly=score > record.threshold,
            model=record.name,
            version=record.version,
            top_features=top_features(row, errors, config.top_k)[0],
            car_id=event.car_id,
            ts=event.ts,
            seq=event.seq,
        )
        scored(current, 1)
        return Response(_encoder.encode(answer), media_type=_JSON)

    @app.post("/score/batch")
    async def score_batch(request: Request, errors: bool = False) -> Response:
        """Score a batch: JSON (events or ``{"features": ...}``) or raw float32 rows."""
        kind = request.headers.get("content-type", _JSON).split(";")[0].strip().lower()
        body = await request.body()
        binary = kind == FEATURES_TYPE
        if binary:
            try:
                features = decode_features(body, _N)
            except WireFormatError as exc:
                raise rejected(400, str(exc)) from exc
        elif kind == _JSON:
            features = _json_features(body, rejected)
        else:
            raise rejected(415, f"Content-Type must be {_JSON} or {FEATURES_TYPE}, not {kind}")
        if len(features) > config.max_rows:
            raise rejected(413, f"{len(features)} events; at most {config.max_rows} a request")
        current = served()
        record = current.record
        if len(features):
            scores, feature_errors = await run_in_threadpool(current.scorer.score, features)
        else:
            scores, feature_errors = np.zeros(0, np.float32), np.zeros((0, _N), np.float32)
        scored(current, len(features))
        if binary:
            return Response(
                encode_scores(scores, feature_errors),
                media_type=SCORES_TYPE,
                headers={
                    MODEL_HEADER: record.name,
                    VERSION_HEADER: str(record.version),
                    THRESHOLD_HEADER: repr(record.threshold),
                },
            )
        flags = scores > record.threshold
        tops: list[list[TopFeature]] = [[] for _ in range(len(features))]
        hits = np.flatnonzero(flags)
        if len(hits):
            picked = top_features(features[hits], feature_errors[hits], config.top_k)
            for i, top in zip(hits.tolist(), picked, strict=True):
                tops[i] = top
        answer = _BatchResponse(
            model=record.name,
            version=record.version,
            threshold=record.threshold,
            scores=scores.tolist(),
            anomaly=flags.tolist(),
            top_features=tops,
            feature_errors=feature_errors.tolist() if errors else None,
        )
        return Response(_encoder.encode(answer), media_type=_JSON)

    return app


def _json_features(body: bytes, rejected: Callable[[int, str], HTTPException]) -> np.ndarray:
    """``[n, 18]`` float32 from a JSON list of events or ``{"features": [[...], ...]}``."""
    start = body.lstrip()[:1]
    try:
        if start == b"[":
            events = _events_decoder.decode(body)
            return np.array([msgspec.structs.astuple(e)[:_N] for e in events], np.float32).reshape(
                -1, _N
            )
        rows = _columns_decoder.decode(body).features
    except msgspec.DecodeError as exc:
        raise rejected(400, f"not a batch of sensor events: {exc}") from exc
    try:  # ragged rows fail in np.array, rectangular ones of another width in reshape
        return np.array(rows, np.float32).reshape(len(rows), _N)
    except ValueError as exc:
        raise rejected(400, f"every row of 'features' must have {_N} numbers") from exc
