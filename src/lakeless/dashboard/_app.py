"""The dashboard's web app (FastAPI): one static page, a JSON API and a server-sent event stream.

Every route but the static ones takes ``?pipeline=NAME`` (default: the pipeline the dashboard
opened with; 404 for one it does not know). Routes:

``GET /``
    the page (``static/index.html``; ``/static/app.js`` and ``/static/style.css`` beside it,
    shipped in the package: nothing is loaded from the internet). ``/?pipeline=NAME`` opens it
    on that pipeline.
``GET /api/pipelines``
    every pipeline the page can show (the built-in car fleet, the registered ones), each with
    its layout: roles, features with units and ranges, the charts (one per unit), topics,
    consumer groups, model (see `lakeless.dashboard.PipelineView.layout`).
``GET /events``
    server-sent events, one ``tick`` a second: ``{"stats", "anomalies" (new since the last
    tick, newest first), "job" (the latest training job), "models_revision"}``; the first tick
    carries the rate history and the latest anomalies. ``?max_events=N`` ends the stream after N.
``GET /api/stats``
    events/s and consumer lag per stage, end offsets and rates per topic, live model versions,
    rate history (see `lakeless.dashboard.DashboardState.stats`).
``GET /api/anomalies?after=ID&limit=N``
    the anomaly feed, newest first: records of the pipeline's anomaly topic (the schema's own
    field names) plus a feed ``id``.
``GET /api/entities``
    the entities from the twin: ``{"available", "key", "count", "open", "entities": [state,
    ...], "error"}`` (open failure episodes first; a state is `lakeless.twin.EntityState`).
``GET /api/entities/{key}?readings=N&anomalies=N``
    one entity: ``{"entity", "readings" (oldest first), "anomalies"}``; 404 when unknown.
``GET /api/cars``, ``GET /api/cars/{key}``
    the same, under the names the car fleet has always used.
``GET /api/models``
    the pipeline's registry versions, newest first, with stage, metrics, lineage, params and
    ``report_image`` (the URL of the training report's PNG when this host has it), and the
    live version per name.
``GET /api/models/{name}/{version}/report.png``
    that PNG (404 when not on this host).
``POST /api/train`` ``{"minutes": N, "pipeline": NAME}``
    start training the pipeline's model on its last N minutes and promoting the result (202
    with the job; 409 while one runs); ``GET /api/train`` lists jobs, ``GET /api/train/{id}``
    shows one.
``GET /api/config``, ``GET /api/health``
    the page's settings; ``{"status": "ok", ...}``.
``GET /healthz``
    ``{"status": "ok"}`` and nothing else: the one path open without the token, for probes.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from lakeless.config import Settings
    >>> app = create_app(Settings(dashboard={"collect": False}))
    >>> with TestClient(app) as client:
    ...     client.get("/api/stats").json()["stages"][0]["name"]
    'ingest'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lakeless.config import Settings
from lakeless.dashboard._collector import KafkaCollector
from lakeless.dashboard._jobs import JobBusyError, TrainJob, TrainJobs
from lakeless.dashboard._views import PipelineView, PipelineViews
from lakeless.errors import LakelessError
from lakeless.pipeline import Pipeline

__all__ = ["STATIC_DIR", "create_app"]

#: The page's files, shipped inside the package.
STATIC_DIR: Final = Path(__file__).parent / "static"
#: Anomalies the first event of a stream carries.
_FIRST_ANOMALIES: Final = 50


def _view_of(views: PipelineViews, pipeline: str | None) -> PipelineView:
    view = views.get(pipeline)
    if view is None:
        known = ", ".join(v.name for v in views.all())
        raise HTTPException(404, f"unknown pipeline {pipeline!r} (known: {known})")
    return view


def _view(request: Request, pipeline: Annotated[str | None, Query()] = None) -> PipelineView:
    """The view of the ``?pipeline=`` of a request (the opening pipeline without one)."""
    return _view_of(request.app.state.views, pipeline)


#: A route parameter: the pipeline the request asks about.
View = Annotated[PipelineView, Depends(_view)]


class TrainRequest(BaseModel):
    """Body of ``POST /api/train``."""

    minutes: float = Field(gt=0, le=7 * 24 * 60)
    pipeline: str | None = None


def create_app(
    settings: Settings,
    pipelines: Sequence[Pipeline] | None = None,
    *,
    closing: threading.Event | None = None,
) -> FastAPI:
    """The dashboard app.

    Args:
        settings: Kafka connection, topic names, ``data_dir`` (reports, the twin's default
            files), the pipeline it opens with and ``settings.dashboard``.
        pipelines: the pipelines to show, the opening one first (default: the built-in car
            fleet); with ``settings.dashboard.collect``, pipelines registered later appear.
        closing: set when the server shuts down: open event streams end then.

    Returns:
        The app; ``app.state`` holds ``views`` (`PipelineViews`), ``jobs`` (`TrainJobs`) and,
        while running, ``collector``.
    """
    config = settings.dashboard
    views = PipelineViews(settings, pipelines or [Pipeline.builtin(settings)])
    closing = closing or threading.Event()
    holder: dict[str, KafkaCollector] = {}

    def finished(_job: TrainJob) -> None:
        if "collector" in holder:
            holder["collector"].refresh_models()

    jobs = TrainJobs(
        settings,
        extra_args=["--epochs", str(config.train_epochs)] if config.train_epochs else [],
        on_finish=finished,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        collector = None
        if config.collect:
            collector = KafkaCollector(settings, views).start()
            holder["collector"] = collector
            app.state.collector = collector
        try:
            yield
        finally:
            closing.set()
            await run_in_threadpool(jobs.cancel_all)
            if collector is not None:
                await run_in_threadpool(collector.stop)
            await run_in_threadpool(views.close)

    app = FastAPI(
        title="lakeless dashboard",
        summary="Live throughput, lag, anomalies, entities and models of lakeless pipelines.",
        lifespan=lifespan,
    )
    app.state.views = views
    app.state.jobs = jobs
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def view_of(pipeline: str | None) -> PipelineView:
        return _view_of(views, pipeline)

    def page_config(view: PipelineView) -> dict[str, Any]:
        return {
            "pipeline": view.name,
            "default_pipeline": views.default,
            "model": view.model,
            "train_enabled": config.train,
            "train_minutes": config.train_minutes,
            "readings": config.readings,
            "interval": config.interval,
            "topics": view.state.topics,
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "twin": view.twin.describe(),
        }

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    def health(view: View) -> dict[str, Any]:
        return {"status": "ok", "collecting": config.collect, **page_config(view)}

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/config")
    def page_settings(view: View) -> dict[str, Any]:
        return page_config(view)

    @app.get("/api/pipelines")
    def pipelines_list() -> dict[str, Any]:
        return {"default": views.default, "pipelines": [v.layout() for v in views.all()]}

    @app.get("/api/stats")
    def stats(view: View) -> dict[str, Any]:
        return view.state.stats()

    @app.get("/api/anomalies")
    def anomalies(
        view: View,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        items = view.state.anomalies(after, limit)
        return {"count": len(items), "last_id": view.state.last_anomaly_id, "anomalies": items}

    @app.get("/api/entities")
    @app.get("/api/cars")
    def entities(view: View) -> dict[str, Any]:
        return view.twin.entities()

    @app.get("/api/entities/{key}")
    @app.get("/api/cars/{key}")
    def entity(
        view: View,
        key: str,
        readings: Annotated[int, Query(ge=0, le=10_000)] = config.readings,
        anomalies: Annotated[int, Query(ge=0, le=1000)] = 20,
    ) -> dict[str, Any]:
        try:
            found = view.twin.entity(key, readings, anomalies)
        except LakelessError as exc:
            raise HTTPException(503, str(exc)) from exc
        if found is None:
            raise HTTPException(404, f"unknown {view.pipeline.schema.key} {key!r}")
        return found

    @app.get("/api/models")
    def models(view: View) -> dict[str, Any]:
        shown = view.state.models()
        for row in shown["models"]:
            path = _report_png(settings, row)
            row["report_image"] = (
                f"/api/models/{row['name']}/{row['version']}/report.png" if path else None
            )
        shown["model"] = view.model
        shown["pipeline"] = view.name
        return shown

    @app.get("/api/models/{name}/{version}/report.png")
    def report_png(name: str, version: int) -> FileResponse:
        row = next(
            (r for v in views.all() if (r := v.state.summary(name, version)) is not None), None
        )
        path = _report_png(settings, row) if row is not None else None
        if path is None:
            raise HTTPException(404, f"no report image of {name}:{version} on this host")
        return FileResponse(path, media_type="image/png")

    @app.post("/api/train", status_code=202)
    def train(body: TrainRequest) -> dict[str, Any]:
        if not config.train:
            raise HTTPException(403, "training from the dashboard is disabled")
        view = view_of(body.pipeline)
        try:
            return jobs.start(body.minutes, view.name, view.model).to_dict()
        except JobBusyError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.get("/api/train")
    def train_jobs() -> dict[str, Any]:
        return {"jobs": [job.to_dict() for job in jobs.jobs()]}

    @app.get("/api/train/{job_id}")
    def train_job(job_id: str) -> dict[str, Any]:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"unknown training job {job_id!r}")
        return job.to_dict()

    @app.get("/events")
    async def events(
        request: Request,
        view: View,
        after: Annotated[int | None, Query(ge=0)] = None,
        max_events: Annotated[int | None, Query(ge=1)] = None,
    ) -> StreamingResponse:
        state = view.state

        async def stream() -> AsyncIterator[str]:
            sent = 0
            last_id = after
            yield f"retry: {int(config.interval * 2000)}\n\n"
            while not closing.is_set():
                first = sent == 0
                if last_id is None:
                    items = state.anomalies(0, _FIRST_ANOMALIES)
                else:
                    items = state.anomalies(last_id, state.anomalies_capacity)
                if items:
                    last_id = items[0]["id"]
                elif last_id is None:
                    last_id = state.last_anomaly_id
                stats_view = state.stats()
                if not first:
                    stats_view.pop("history", None)
                latest = jobs.latest()
                payload = {
                    "stats": stats_view,
                    "anomalies": items,
                    "job": latest.to_dict() if latest else None,
                    "models_revision": stats_view["models_revision"],
                }
                yield f"event: tick\nid: {last_id}\ndata: {json.dumps(payload)}\n\n"
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
                deadline = time.monotonic() + config.interval
                while time.monotonic() < deadline and not closing.is_set():
                    if await request.is_disconnected():
                        return
                    await asyncio.sleep(min(0.2, config.interval))

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.exception_handler(LakelessError)
    async def lakeless_error(_request: Request, exc: LakelessError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return app


def _report_png(settings: Settings, row: dict[str, Any] | None) -> Path | None:
    """Where this host keeps the training report image of a registry row, if it does."""
    if row is None:
        return None
    candidates: list[Path] = []
    report = row.get("report")
    files = report.get("files") if isinstance(report, dict) else None
    if isinstance(files, dict) and isinstance(files.get("png"), str):
        candidates.append(Path(files["png"]))
    # The trainer's default folder, in case the report moved (a lost version race renames it).
    folder = Path(settings.data_dir) / "reports" / f"{row['name']}-v{row['version']}"
    if folder.is_dir():
        candidates += sorted(folder.glob("*.png"))
    for path in candidates:
        if path.suffix.lower() == ".png" and path.is_file():
            return path
    return None
