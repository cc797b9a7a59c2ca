"""The dashboard's web app (FastAPI): one static page, a JSON API and a server-sent event stream.

Routes:

``GET /``
    the page (``static/index.html``; ``/static/app.js`` and ``/static/style.css`` beside it,
    shipped in the package: nothing is loaded from the internet).
``GET /events``
    server-sent events, one ``tick`` a second: ``{"stats", "anomalies" (new since the last
    tick, newest first), "job" (the latest training job), "models_revision"}``; the first tick
    carries the rate history and the latest anomalies. ``?max_events=N`` ends the stream after N.
``GET /api/stats``
    events/s and consumer lag per stage, end offsets and rates per topic, live model versions,
    rate history (see `lakeless.dashboard.DashboardState.stats`).
``GET /api/anomalies?after=ID&limit=N``
    the anomaly feed, newest first (records of ``anomalies`` plus a feed ``id``).
``GET /api/cars``
    the fleet from the twin: ``{"available", "count", "cars": [car state, ...], "error"}``.
``GET /api/cars/{car_id}?readings=N&anomalies=N``
    one car: ``{"car", "readings" (oldest first), "anomalies"}``; 404 for an unknown car.
``GET /api/models``
    registry versions, newest first, with stage, metrics, lineage, params and ``report_image``
    (the URL of the training report's PNG when this host has it), and the live version per name.
``GET /api/models/{name}/{version}/report.png``
    that PNG (404 when not on this host).
``POST /api/train`` ``{"minutes": N}``
    start training on the last N minutes and promoting the result (202 with the job; 409 while
    one runs); ``GET /api/train`` lists jobs, ``GET /api/train/{job_id}`` shows one.
``GET /api/health``
    ``{"status": "ok", ...}``.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from lakeless.config import Settings
    >>> app = create_app(Settings(), DashboardSettings(collect=False))
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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from lakeless.config import Settings
from lakeless.dashboard._collector import KafkaCollector
from lakeless.dashboard._jobs import JobBusyError, TrainJob, TrainJobs
from lakeless.dashboard._state import STAGES, DashboardState, StageSpec
from lakeless.dashboard._twin import TwinReader
from lakeless.errors import LakelessError

__all__ = ["STATIC_DIR", "DashboardSettings", "create_app"]

#: The page's files, shipped inside the package.
STATIC_DIR: Final = Path(__file__).parent / "static"
#: Anomalies the first event of a stream carries.
_FIRST_ANOMALIES: Final = 50


class DashboardSettings(BaseSettings):
    """The dashboard's own settings, from ``LAKELESS_DASHBOARD__*`` (e.g. ``..._PORT``).

    Attributes:
        host: interface to listen on.
        port: TCP port (0: any free one).
        twin_url: the twin's database (``sqlite:///...`` or ``postgresql://...``); ``None``:
            the twin's default, ``sqlite:///<data_dir>/twin.sqlite``.
        model: registry name of the model the page follows and the train button trains.
        preprocess_group: consumer group of the preprocess stage.
        score_group: consumer group of the score stage.
        twin_group: consumer group of the twin stage.
        collect: read Kafka (off: the state is fed by hand, for tests).
        interval: seconds between two offset readings and two pushed events.
        rate_window: seconds a rate is averaged over.
        models_interval: seconds between two registry refreshes.
        backfill: anomalies per partition shown from before the dashboard started.
        max_anomalies: anomalies kept for the feed.
        train_enabled: show the train button and accept ``POST /api/train``.
        train_minutes: the window the page proposes.
        train_epochs: ``--epochs`` for the trainer (``None``: its default or
            ``LAKELESS_TRAIN_EPOCHS``).
        car_readings: readings a car's charts show.
    """

    model_config = SettingsConfigDict(
        env_prefix="LAKELESS_DASHBOARD__", frozen=True, extra="forbid"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    twin_url: str | None = None
    model: str = Field(default="car-autoencoder", min_length=1)
    preprocess_group: str = "lakeless-preprocess"
    score_group: str = "lakeless-score"
    twin_group: str = "lakeless-twin"
    collect: bool = True
    interval: float = Field(default=1.0, gt=0, le=60)
    rate_window: float = Field(default=3.0, gt=0)
    models_interval: float = Field(default=5.0, gt=0)
    backfill: int = Field(default=20, ge=0)
    max_anomalies: int = Field(default=500, ge=1)
    train_enabled: bool = True
    train_minutes: float = Field(default=10.0, gt=0)
    train_epochs: int | None = Field(default=None, ge=1)
    car_readings: int = Field(default=300, ge=1, le=10_000)

    def stages(self) -> list[StageSpec]:
        """`lakeless.dashboard.STAGES` with these group names."""
        groups = {
            "preprocess": self.preprocess_group,
            "score": self.score_group,
            "twin": self.twin_group,
        }
        return [StageSpec(s.name, groups.get(s.name, s.group), s.reads, s.writes) for s in STAGES]


class TrainRequest(BaseModel):
    """Body of ``POST /api/train``."""

    minutes: float = Field(gt=0, le=7 * 24 * 60)


def create_app(
    settings: Settings,
    config: DashboardSettings | None = None,
    *,
    state: DashboardState | None = None,
    closing: threading.Event | None = None,
) -> FastAPI:
    """The dashboard app.

    Args:
        settings: Kafka connection, topic names and ``data_dir`` (reports, default twin).
        config: the dashboard's settings.
        state: the state to show (a new one by default); with ``config.collect`` a
            `KafkaCollector` feeds it from the app's start to its end.
        closing: set when the server shuts down: open event streams end then.

    Returns:
        The app; ``app.state`` holds ``dashboard`` (`DashboardState`), ``jobs``
        (`TrainJobs`), ``twin`` (`TwinReader`) and, while running, ``collector``.
    """
    config = config or DashboardSettings()
    topics = settings.topics
    state = state or DashboardState(
        config.stages(),
        {
            "raw": topics.raw,
            "clean": topics.clean,
            "dlq": topics.dlq,
            "anomalies": topics.anomalies,
        },
        rate_window=config.rate_window,
        max_anomalies=config.max_anomalies,
    )
    closing = closing or threading.Event()
    twin = TwinReader(config.twin_url or f"sqlite:///{settings.data_dir / 'twin.sqlite'}")
    holder: dict[str, KafkaCollector] = {}

    def finished(_job: TrainJob) -> None:
        if "collector" in holder:
            holder["collector"].refresh_models()

    jobs = TrainJobs(
        settings,
        model=config.model,
        extra_args=["--epochs", str(config.train_epochs)] if config.train_epochs else [],
        on_finish=finished,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        collector = None
        if config.collect:
            collector = KafkaCollector(
                settings,
                state,
                interval=config.interval,
                models_interval=config.models_interval,
                backfill=config.backfill,
            ).start()
            holder["collector"] = collector
            app.state.collector = collector
        try:
            yield
        finally:
            closing.set()
            await run_in_threadpool(jobs.cancel_all)
            if collector is not None:
                await run_in_threadpool(collector.stop)
            await run_in_threadpool(twin.close)

    app = FastAPI(
        title="lakeless dashboard",
        summary="Live throughput, lag, anomalies, cars and models of a lakeless pipeline.",
        lifespan=lifespan,
    )
    app.state.dashboard = state
    app.state.jobs = jobs
    app.state.twin = twin
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def page_config() -> dict[str, Any]:
        return {
            "model": config.model,
            "train_enabled": config.train_enabled,
            "train_minutes": config.train_minutes,
            "car_readings": config.car_readings,
            "interval": config.interval,
            "topics": state.topics,
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "twin": twin.describe(),
        }

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "collecting": config.collect, **page_config()}

    @app.get("/api/config")
    def page_settings() -> dict[str, Any]:
        return page_config()

    @app.get("/api/stats")
    def stats() -> dict[str, Any]:
        return state.stats()

    @app.get("/api/anomalies")
    def anomalies(
        after: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        items = state.anomalies(after, limit)
        return {"count": len(items), "last_id": state.last_anomaly_id, "anomalies": items}

    @app.get("/api/cars")
    def cars() -> dict[str, Any]:
        return twin.fleet()

    @app.get("/api/cars/{car_id}")
    def car(
        car_id: str,
        readings: int = Query(config.car_readings, ge=0, le=10_000),
        anomalies: int = Query(20, ge=0, le=1000),
    ) -> dict[str, Any]:
        try:
            found = twin.car(car_id, readings, anomalies)
        except LakelessError as exc:
            raise HTTPException(503, str(exc)) from exc
        if found is None:
            raise HTTPException(404, f"unknown car {car_id!r}")
        return found

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        view = state.models()
        for row in view["models"]:
            path = _report_png(settings, row)
            row["report_image"] = (
                f"/api/models/{row['name']}/{row['version']}/report.png" if path else None
            )
        view["model"] = config.model
        return view

    @app.get("/api/models/{name}/{version}/report.png")
    def report_png(name: str, version: int) -> FileResponse:
        row = state.summary(name, version)
        path = _report_png(settings, row) if row is not None else None
        if path is None:
            raise HTTPException(404, f"no report image of {name}:{version} on this host")
        return FileResponse(path, media_type="image/png")

    @app.post("/api/train", status_code=202)
    def train(body: TrainRequest) -> dict[str, Any]:
        if not config.train_enabled:
            raise HTTPException(403, "training from the dashboard is disabled")
        try:
            return jobs.start(body.minutes).to_dict()
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
        after: int | None = Query(None, ge=0),
        max_events: int | None = Query(None, ge=1),
    ) -> StreamingResponse:
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
