"""The dashboard in a real browser, over two real (small) pipelines at once.

A session broker; the car fleet and a park of pumps (the second example: no sequence field,
two context fields, an enum label), each simulated in real time after a minute and a half of
backlog, each through its own preprocess, score and twin stages on threads, both twins in one
SQLite file; a z-score model live per pipeline; the dashboard on a free port. Debian's
Chromium, driven by Playwright (never a browser Playwright downloads), then checks what a user
would: the events/s numbers move, the anomaly feed fills, an entity's charts draw (one per unit
of the pipeline's features), the pipeline selector switches to the pumps and the page follows
their schema, and the train button trains a new car model on the last minutes, which goes
live in the models panel. The screenshots go to ``tests/e2e/artifacts/`` (ignored by git);
with ``LAKELESS_UPDATE_SCREENSHOT=1`` the car fleet's also replaces ``docs/dashboard.png``
(the README's), so a test run leaves tracked files alone.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.dashboard import chart_groups, dashboard_server
from lakeless.examples import car_fleet, example_schema
from lakeless.fleet import Fleet
from lakeless.fleet._pumps import PumpFleet
from lakeless.kafka import TopicSpec, create_topics, make_producer
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.pipeline import Pipeline, PipelineTopics, SchemaRegistry
from lakeless.preprocess import PreprocessStage
from lakeless.registry import Registry, RegistrySettings
from lakeless.score import ScoreStage
from lakeless.twin import TwinStage

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.kafka, pytest.mark.timeout(900)]

CHROMIUM = "/usr/bin/chromium"
#: What this machine's Chromium needs: its background connections are refused here.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
MODEL = "car-autoencoder"
PARTITIONS = 3
CARS = 20
PUMPS = 8
INTERVAL = 0.5  # seconds between two events of one car: 40 events/s
BACKLOG_S = 90


@dataclass
class Stack:
    settings: Settings
    pumps: Pipeline
    errors: list[BaseException]


Simulator = Callable[..., Any]


def healthy_model(simulator: Simulator, devices: int, interval: float) -> tuple[bytes, float]:
    """A z-score ONNX model of healthy behaviour, threshold at the 99th percentile.

    A weak detector (a few false alarms), but one that flags failing devices within seconds,
    which is what the feed needs to show.
    """
    from lakeless.testing.models import make_test_onnx

    park = simulator(devices, seed=11, interval=interval, start=0)
    data = np.concatenate([park.step().values for _ in range(600)])
    mean, std = data.mean(axis=0), data.std(axis=0) + 1e-3
    onnx = make_test_onnx(data.shape[1], mean=mean.tolist(), scale=(1 / std).tolist())
    scores, _ = OnnxScorer(onnx, data.shape[1]).score(data)
    return onnx, float(np.quantile(scores, 0.99))


def produce(
    kafka: KafkaSettings,
    topic: str,
    simulator: Simulator,
    devices: int,
    interval: float,
    stop: threading.Event,
) -> None:
    """Raw JSON events in real time after a backlog; one malformed record in 500 (the DLQ)."""
    park = simulator(
        devices,
        seed=11,
        interval=interval,
        start=int((time.time() - BACKLOG_S) * 1000),
        failure_rate=30.0,
        repair_after=60.0,
        ramp=5.0,
    )
    producer = make_producer(kafka, linger_ms=20)
    sent = 0
    while not stop.is_set():
        batch = park.step()
        wait = batch.ts[-1] / 1000 - time.time()
        if wait > 0:
            stop.wait(wait)
        for key, value in zip(batch.car_ids, batch.encode(), strict=True):
            sent += 1
            if sent % 500 == 0:
                value = value[: len(value) // 2]  # truncated JSON: dead-lettered
            while True:
                try:
                    producer.produce(topic, value, key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    producer.flush(10)


def in_thread(
    target: Callable[[], Any], errors: list[BaseException], name: str
) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)
            raise

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def stack(kafka: KafkaSettings, tmp_path: Path) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        raw=f"e2e-{run}-raw",
        clean=f"e2e-{run}-clean",
        dlq=f"e2e-{run}-dlq",
        models=f"e2e-{run}-models",
        anomalies=f"e2e-{run}-anomalies",
        scores=f"e2e-{run}-scores",
        schemas=f"e2e-{run}-schemas",
    )
    pumps = Pipeline.new(
        f"pumps-{run}",
        example_schema("pumps"),
        topics=PipelineTopics(
            *(f"e2e-{run}-pumps.{k}" for k in ("raw", "clean", "dlq", "anomalies", "scores"))
        ),
    )
    data_topics = [topics.raw, topics.clean, topics.dlq, topics.anomalies, topics.scores]
    create_topics(
        kafka,
        [
            *(
                TopicSpec(t, PARTITIONS, 1)
                for t in data_topics + list(pumps.topics.to_dict().values())
            ),
            TopicSpec(topics.models, 1, 1, {"max.message.bytes": str(64 * 1024 * 1024)}),
            TopicSpec(topics.schemas, 1, 1),
        ],
    )
    base = {"kafka": kafka, "topics": topics, "data_dir": tmp_path / "data"}
    twin_url = f"sqlite:///{tmp_path / 'twin.sqlite'}"  # both pipelines' twins
    fleet_settings = Settings(
        **base,
        preprocess={"group_id": f"e2e-{run}-preprocess", "max_future_ms": None},
        score={"group_id": f"e2e-{run}-score", "model": MODEL, "log_interval": 0},
        twin={"url": twin_url, "group_id": f"e2e-{run}-twin"},
        dashboard={
            "port": 0,
            "models_interval": 2.0,
            "backfill": 30,
            "train_minutes": 3,
            "train_epochs": 3,
        },
    )
    pump_settings = Settings(
        **base,
        pipeline=pumps.name,
        twin={"url": twin_url},
        preprocess={"max_future_ms": None},
        score={"log_interval": 0},
    )
    SchemaRegistry(fleet_settings).create(pumps)
    fleet = Pipeline.builtin(fleet_settings)
    with Registry(fleet_settings, RegistrySettings(timeout=20)) as registry:
        onnx, threshold = healthy_model(Fleet, CARS, INTERVAL)
        registry.register(
            MODEL,
            onnx,
            threshold=threshold,
            stage="live",
            features=car_fleet().feature_names,
            description="z-score baseline",
        )
        onnx, threshold = healthy_model(PumpFleet, PUMPS, 1.0)
        registry.register(
            pumps.model,
            onnx,
            threshold=threshold,
            stage="live",
            features=pumps.schema.feature_names,
            pipeline=pumps.name,
            schema_fingerprint=pumps.schema.fingerprint_hex,
            description="z-score baseline",
        )

    errors: list[BaseException] = []
    stop = threading.Event()
    stages = [
        stage
        for settings, pipeline in ((fleet_settings, fleet), (pump_settings, pumps))
        for stage in (
            PreprocessStage(settings, pipeline),
            ScoreStage(settings, pipeline),
            TwinStage(settings, pipeline),
        )
    ]
    threads = [
        in_thread(lambda: produce(kafka, topics.raw, Fleet, CARS, INTERVAL, stop), errors, "cars"),
        in_thread(
            lambda: produce(kafka, pumps.topics.raw, PumpFleet, PUMPS, 1.0, stop), errors, "pumps"
        ),
        *(in_thread(lambda s=s: s.run(RunLimits()), errors, type(s).__name__) for s in stages),
    ]
    try:
        yield Stack(fleet_settings, pumps, errors)
    finally:
        stop.set()
        for stage in stages:
            stage.request_stop()
        for thread in threads:
            thread.join(30)


def wait_until(page: Any, script: str, timeout_s: float, what: str, arg: Any = None) -> Any:
    try:
        return page.wait_for_function(script, arg=arg, timeout=timeout_s * 1000, polling=250)
    except playwright_api.TimeoutError as exc:
        stats = page.evaluate(
            "async () => { const s = await (await fetch('/api/stats' + location.search)).json();"
            " return {stages: s.stages, topics: s.topics, error: s.error,"
            " seen: s.anomalies_seen}; }"
        )
        raise AssertionError(
            f"the page never showed {what} within {timeout_s:.0f}s; /api/stats: {stats}"
        ) from exc


RATES = """() => ['ingest', 'preprocess', 'score', 'twin'].map(
    s => document.querySelector('#rate-' + s)?.dataset.value || '')"""

CANVAS_INK = """(canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let ink = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) ink++;
    return ink;
}"""

CHARTS_DRAWN = """(n) => { const c = [...document.querySelectorAll('#entity-charts canvas')];
    return c.length === n && c.every(x => x.dataset.drawn === '1'
    && Number(x.dataset.points) >= 10); }"""


def header_texts(page: Any, table: str, first: str) -> list[str]:
    """The header cells of ``table`` once the page's script has drawn them (``first`` first).

    The headers follow the pipeline's schema, which the page fetches after it loads: read at
    once, they can still be empty (seen in CI).
    """
    cells = f"{table} th"
    wait_until(
        page,
        "([sel, text]) => document.querySelector(sel)?.textContent === text",
        30,
        f"{first!r} heading {table}",
        arg=[cells, first],
    )
    texts: list[str] = page.eval_on_selector_all(cells, "h => h.map(x => x.textContent)")
    return texts


def check_live_page(page: Any, entities: int, charts: int, model: str) -> None:
    """What every pipeline's page must show: moving rates, anomalies, entities, charts."""
    wait_until(page, f"() => ({RATES})().every(v => v !== '')", 60, "a rate per stage")
    first = page.evaluate(RATES)
    wait_until(
        page,
        f"(first) => JSON.stringify(({RATES})()) !== JSON.stringify(first)",
        20,
        "the events/s numbers change",
        arg=first,
    )
    wait_until(
        page,
        "() => Number(document.querySelector('#rate-score').dataset.value) > 0",
        60,
        "the score stage at work",
    )
    assert page.text_content("#lag-score").startswith("lag ")
    # The anomaly feed fills with the live model's anomalies.
    wait_until(
        page,
        "() => document.querySelectorAll('#anomaly-feed tbody tr').length >= 3",
        90,
        "anomalies in the feed",
    )
    assert f"{model} v1" in page.text_content("#anomaly-feed tbody tr")
    assert page.get_attribute("#live-model", "data-version") == "1"
    # The entities from the twin; an entity's drill-down draws one chart per unit.
    wait_until(
        page,
        f"() => document.querySelectorAll('#entities tbody tr.entity').length === {entities}",
        60,
        "every entity in the table",
    )
    page.click("#entities tbody tr.entity >> nth=0")
    wait_until(page, CHARTS_DRAWN, 30, "the entity's charts", arg=charts)
    for canvas in page.query_selector_all("#entity-charts canvas"):
        assert canvas.evaluate(CANVAS_INK) > 500


def test_dashboard_in_a_browser(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make system-packages)")
    # The trainer the button starts inherits the environment: a lower threshold quantile makes
    # the new model (a few epochs on three minutes of data) flag failures soon.
    monkeypatch.setenv("LAKELESS_TRAIN__THRESHOLD_QUANTILE", "0.995")
    started = time.monotonic()
    settings, pumps = stack.settings, stack.pumps
    fleet = Pipeline.builtin(settings)
    car_charts = len(chart_groups(fleet.schema))
    pump_charts = chart_groups(pumps.schema)
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        dashboard_server(settings, [fleet, pumps]) as server,
        playwright_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(server.url)
            assert page.input_value("#pipeline") == "car-fleet"
            headers = header_texts(page, "#entities", "car")
            assert headers[:2] == ["car", "model"]  # the key, then the context field
            check_live_page(page, CARS, car_charts, MODEL)
            assert car_charts == 11  # one per unit of the 18 features
            page.wait_for_selector("#models tbody tr[data-version='1'][data-stage='live']")
            assert page.eval_on_selector_all(
                "#models tbody tr", "rows => rows.map(r => r.dataset.name)"
            ) == [MODEL]  # the pumps' model is not the car fleet's

            # The selector: the pumps, and a page that follows their schema.
            page.select_option("#pipeline", pumps.name)
            page.wait_for_url(f"**/?pipeline={pumps.name}")
            assert page.text_content("#pipeline-name") == pumps.name
            headers = header_texts(page, "#entities", "pump")
            assert headers[:3] == ["pump", "site", "pump_type"]
            feed = header_texts(page, "#anomaly-feed", "time")
            assert feed[:3] == ["time", "pump", "fault"]
            check_live_page(page, PUMPS, len(pump_charts), pumps.model)
            titles = page.eval_on_selector_all(
                "#entity-charts .title > span:first-child", "s => s.map(x => x.textContent)"
            )
            assert titles == [c["title"] for c in pump_charts]
            assert page.get_attribute("#entity-charts canvas >> nth=1", "data-features") == (
                "discharge_pressure,suction_pressure"
            )
            assert page.eval_on_selector_all(
                "#models tbody tr", "rows => rows.map(r => r.dataset.name)"
            ) == [pumps.model]
            stages = page.eval_on_selector_all(
                ".stage", "cards => cards.map(c => c.title).filter(t => t)"
            )
            assert any(f"lakeless-score.{pumps.name}" in t for t in stages)
            page.screenshot(path=str(ARTIFACTS / "dashboard-pumps.png"), full_page=True)

            # Back to the cars: train on the last minutes and see v2 go live.
            page.select_option("#pipeline", "car-fleet")
            page.wait_for_url("**/?pipeline=car-fleet")
            page.wait_for_selector("#models tbody tr[data-version='1'][data-stage='live']")
            page.fill("#train-minutes", str(settings.dashboard.train_minutes))
            page.click("#train-button")
            wait_until(
                page,
                "() => ['succeeded', 'failed'].includes("
                "document.querySelector('#train-status').dataset.status)",
                600,
                "the training job end",
            )
            status = page.text_content("#train-status")
            assert page.get_attribute("#train-status", "data-status") == "succeeded", status
            wait_until(
                page,
                "() => document.querySelector("
                "\"#models tbody tr[data-version='2'][data-stage='live']\") !== null"
                " && document.querySelector('#live-model').dataset.version === '2'",
                30,
                "model v2 live",
            )
            assert (
                page.get_attribute("#models tbody tr[data-version='1']", "data-stage") == "archived"
            )
            wait_until(
                page,
                "() => { const i = document.querySelector('#report-image');"
                " return i.complete && i.naturalWidth > 100; }",
                30,
                "the training report image",
            )
            # The scorer hot-swaps to v2: its anomalies name it (the new model flags failures).
            wait_until(
                page,
                f"() => [...document.querySelectorAll('#anomaly-feed tbody tr')]"
                f".some(r => r.textContent.includes('{MODEL} v2'))",
                90,
                "an anomaly scored by v2",
            )
            wait_until(
                page,
                "() => document.querySelectorAll('#entities tbody tr.entity').length > 0",
                30,
                "the entities again",
            )
            page.click("#entities tbody tr.entity >> nth=0")  # charts for the picture
            wait_until(page, CHARTS_DRAWN, 30, "the car's charts again", arg=car_charts)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("LAKELESS_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
        finally:
            browser.close()
    assert not stack.errors, stack.errors
    print(f"dashboard browser test: {time.monotonic() - started:.0f}s")
