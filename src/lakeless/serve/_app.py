"""The model server's HTTP API (FastAPI): score one event or a batch with the live model.

Endpoints:

- ``POST /score``: one event, a JSON object of the pipeline's schema, validated exactly as
  ``preprocess`` validates raw records (unknown, missing, non-finite, out-of-range fields are
  refused with the same reason codes: 422 ``{"reason", "field", "detail"}``) ->
  ``{score, threshold, anomaly, model, version, top_features}`` plus the event's key, time and
  sequence fields under their own names;
- ``POST /score/batch``: JSON, either a list of such events or the compact
  ``{"features": [[one number per model input, in the order of GET /model], ...]}``
  (range-checked), -> ``{model, version,
  threshold, scores, anomaly, top_features}`` (``top_features`` is empty for rows that are not
  anomalies; add ``?errors=true`` for every row's ``feature_errors``); or the raw float32 form of
  `lakeless.serve._wire` (``Content-Type: application/x-lakeless-features``), which is what
  ``lakeless score --via`` sends;
- ``GET /model``: the live model's name, version, threshold, sha256, stage and features;
- ``GET /health``: ``{"status": "ok", "ready": <a model is live>, "model": "name:version"}``,
  always 200 (the process is alive); ``/model`` and the scoring endpoints answer 503 until a
  model is live.

A non-finite score is an anomaly. JSON is read and written with msgspec, not with FastAPI's
pydantic body parsing. A request reads the live model once and is answered by that model
alone; the registry watcher swaps models between requests.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from lakeless.registry import build_record
    >>> from lakeless.testing.models import FEATURES, make_test_onnx
    >>> app = create_app(None)
    >>> record = build_record("m", 1, make_test_onnx(bias=1.0), threshold=2.0, features=FEATURES)
    >>> _ = app.state.live.offer(record)
    >>> with TestClient(app) as client:
    ...     client.post("/score/batch", json={"features": [[0.0] * 18]}).json()["scores"]
    [1.0]
"""

from __future__ import annotations

import contextlib
import operator
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from lakeless.config import Settings
from lakeless.kafka import StageStats
from lakeless.lifecycle import Stopper
from lakeless.model.scoring import OnnxScorerFactory
from lakeless.pipeline import Pipeline
from lakeless.preprocess.validate import Rejection, Validator
from lakeless.schema.outputs import TopFeature, top_features
from lakeless.serve._models import LiveModel, RegistryWatcher, Served
from lakeless.serve._settings import ServeSettings
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

__all__ = ["ServeStats", "create_app"]

_JSON: Final = "application/json"


class _Columns(msgspec.Struct, forbid_unknown_fields=True):
    features: list[list[float]]


class _ScoreResponse(msgspec.Struct):
    score: float
    threshold: float
    anomaly: bool
    model: str
    version: int
    top_features: list[TopFeature]


class _BatchResponse(msgspec.Struct, omit_defaults=True):
    model: str
    version: int
    threshold: float
    scores: list[float]
    anomaly: list[bool]
    top_features: list[list[TopFeature]]
    feature_errors: list[list[float]] | None = None


_columns_decoder: Final = msgspec.json.Decoder(_Columns)
_encoder: Final = msgspec.json.Encoder()


@dataclass
class ServeStats(StageStats):
    """What a server answered (``in``: events scored).

    Attributes:
        requests: scoring requests answered with scores.
        rejected: scoring requests refused (bad input: 4xx).
        unavailable: scoring requests answered 503 (no live model).
        by_model: events scored per ``name:version``.
    """

    requests: int = 0
    rejected: int = 0
    unavailable: int = 0
    by_model: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        """Events scored."""
        return self.received


def create_app(
    settings: Settings | None,
    pipeline: Pipeline | None = None,
    config: ServeSettings | None = None,
    *,
    live: LiveModel | None = None,
    stopper: Stopper | None = None,
) -> FastAPI:
    """The model server's ASGI app.

    Args:
        settings: Kafka and topics; the app follows the model on the registry while it runs
            (from its lifespan start). ``None``: no registry, serve what is offered to
            ``app.state.live`` (tests, a fixed model).
        pipeline: the pipeline whose events it scores (default: the built-in car fleet).
        config: the server's settings.
        live: the model holder (a new `LiveModel` with `OnnxScorerFactory` by default).
        stopper: told about every scoring request (``add(1)``), for ``--count`` and
            ``--until-idle``.

    Returns:
        The app; ``app.state`` has ``live`` (`LiveModel`), ``stats`` (`ServeStats`) and, once
        started with ``settings``, ``watcher`` (`RegistryWatcher`).
    """
    from lakeless.config import Settings as _Settings

    config = config or ServeSettings()
    pipeline = pipeline or Pipeline.builtin(settings or _Settings())
    schema = pipeline.schema
    model_name = config.model or pipeline.model
    live = live or LiveModel(OnnxScorerFactory(config.threads))
    stats = ServeStats()
    validator = Validator(schema, max_future_ms=None, min_ts_ms=None)
    read_features = _feature_reader(schema.feature_names)
    identity = [schema.key, schema.time, *([schema.sequence] if schema.sequence else [])]
    low = np.array([_bound(schema.field(f).min, -np.inf) for f in schema.feature_names])
    high = np.array([_bound(schema.field(f).max, np.inf) for f in schema.feature_names])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher: RegistryWatcher | None = None
        started = time.monotonic()
        if settings is not None:
            try:
                watcher = await run_in_threadpool(
                    RegistryWatcher,
                    settings,
                    model_name,
                    live,
                    features=schema.feature_names,
                    pipeline=pipeline.name,
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
        summary="Scores events with the registry's live model (hot-swapped).",
        lifespan=lifespan,
    )
    app.state.live = live
    app.state.stats = stats
    app.state.startup_error = None

    def served() -> Served:
        current = live.current
        if current is None:
            stats.unavailable += 1
            raise HTTPException(503, f"no live version of model {model_name!r} yet")
        return current

    def rejected(status: int, detail: Any) -> HTTPException:
        stats.rejected += 1
        return HTTPException(status, detail)

    def refused(rejection: Rejection, index: int | None = None) -> HTTPException:
        detail: dict[str, Any] = {
            "reason": rejection.reason.value,
            "field": rejection.field,
            "detail": rejection.detail,
        }
        if index is not None:
            detail["index"] = index
        return rejected(422, detail)

    def scored(model: Served, rows: int) -> None:
        stats.requests += 1
        stats.received += rows
        stats.by_model[model.record.ref] += rows
        if stopper is not None:
            stopper.add(1)

    def inputs(model: Served, matrix: np.ndarray) -> np.ndarray:
        """The model's input columns of a pipeline feature matrix."""
        names = schema.feature_names
        columns = [names.index(f) for f in model.record.features]
        if columns == list(range(len(names))):
            return matrix
        return np.ascontiguousarray(matrix[:, columns])

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness; ``ready`` once a model is live."""
        current = live.current
        return {
            "status": "ok",
            "ready": current is not None,
            "model": current.record.ref if current else None,
            "pipeline": pipeline.name,
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
        """Score one event (a JSON object of the pipeline's schema)."""
        body = await request.body()
        event = validator.validate(body)
        if isinstance(event, Rejection):
            raise refused(event)
        current = served()
        row = inputs(current, np.array([read_features(event)], np.float32))
        scores, errors = current.scorer.score(row)
        record = current.record
        score = float(scores[0])
        answer = msgspec.structs.asdict(
            _ScoreResponse(
                score=score,
                threshold=record.threshold,
                anomaly=not score <= record.threshold,
                model=record.name,
                version=record.version,
                top_features=top_features(row, errors, config.top_k, record.features)[0],
            )
        )
        answer.update({name: getattr(event, name) for name in identity})
        scored(current, 1)
        return Response(_encoder.encode(answer), media_type=_JSON)

    @app.post("/score/batch")
    async def score_batch(request: Request, errors: bool = False) -> Response:
        """Score a batch: JSON (events or ``{"features": ...}``) or raw float32 rows."""
        kind = request.headers.get("content-type", _JSON).split(";")[0].strip().lower()
        body = await request.body()
        current = served()
        record = current.record
        n_inputs = len(record.features)
        binary = kind == FEATURES_TYPE
        if binary:
            try:
                features = decode_features(body, n_inputs)
            except WireFormatError as exc:
                raise rejected(400, str(exc)) from exc
        elif kind == _JSON:
            features = _json_features(body, current)
        else:
            raise rejected(415, f"Content-Type must be {_JSON} or {FEATURES_TYPE}, not {kind}")
        if len(features) > config.max_rows:
            raise rejected(413, f"{len(features)} events; at most {config.max_rows} a request")
        if len(features):
            scores, feature_errors = await run_in_threadpool(current.scorer.score, features)
        else:
            scores, feature_errors = (
                np.zeros(0, np.float32),
                np.zeros((0, n_inputs), np.float32),
            )
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
        flags = ~(scores <= record.threshold)  # NaN: an anomaly
        tops: list[list[TopFeature]] = [[] for _ in range(len(features))]
        hits = np.flatnonzero(flags)
        if len(hits):
            picked = top_features(
                features[hits], feature_errors[hits], config.top_k, record.features
            )
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

    def _json_features(body: bytes, model: Served) -> np.ndarray:
        """``[n, model inputs]`` float32, validated: events, or rows of the model's inputs."""
        if body.lstrip()[:1] == b"[":
            try:
                items = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise rejected(400, f"not JSON: {exc}") from exc
            rows = []
            for index, item in enumerate(items):
                event = validator.validate(_encoder.encode(item))
                if isinstance(event, Rejection):
                    raise refused(event, index)
                rows.append(read_features(event))
            events = np.array(rows, np.float32).reshape(-1, len(schema.feature_names))
            return inputs(model, events)
        names = model.record.features
        n = len(names)
        try:
            columns = _columns_decoder.decode(body).features
        except msgspec.DecodeError as exc:
            raise rejected(400, f"not a batch of events: {exc}") from exc
        try:  # ragged rows fail in np.array, rectangular ones of another width in reshape
            matrix = np.array(columns, np.float64).reshape(len(columns), n)
        except ValueError as exc:
            raise rejected(
                400, f"every row of 'features' must have {n} numbers ({', '.join(names)})"
            ) from exc
        where = [schema.feature_names.index(name) for name in names]
        lows, highs = low[where], high[where]
        bad = ~np.isfinite(matrix) | (matrix < lows) | (matrix > highs)
        if bad.any():
            row, column = (int(v) for v in np.argwhere(bad)[0])
            name, value = names[column], matrix[row, column]
            reason = "not_finite" if not np.isfinite(value) else "out_of_range"
            detail = {
                "reason": reason,
                "field": name,
                "index": row,
                "detail": f"{name}: {value} is outside [{lows[column]}, {highs[column]}]",
            }
            raise rejected(422, detail)
        return matrix.astype(np.float32)

    return app


def _bound(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _feature_reader(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    get = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda event: (get(event),)
    return lambda event: tuple(get(event))
