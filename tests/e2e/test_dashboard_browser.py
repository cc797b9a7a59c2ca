"""The dashboard in a real browser, over a real (small) pipeline.

A session broker; a fleet simulator producing raw JSON events in real time (after a minute and a
half of backlog, so there is something to train on); the preprocess, score and twin stages on
threads; a z-score model registered and live; the dashboard on a free port. Debian's Chromium,
driven by Playwright (never a browser Playwright downloads), then checks what a user would:
the events/s numbers move, the anomaly feed fills, a car's charts draw, and the train button
trains a new model on the last minutes, which goes live in the models panel. The screenshot goes
to ``tests/e2e/artifacts/dashboard.png`` (ignored by git); with ``LAKELESS_UPDATE_SCREENSHOT=1``
it also replaces ``docs/dashboard.png`` (the README's), so a test run leaves tracked files alone.
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
from lakeless.dashboard import DashboardServer, DashboardSettings
from lakeless.fleet import Fleet
from lakeless.kafka import TopicSpec, create_topics, make_producer
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.preprocess import PreprocessSettings, PreprocessStage
from lakeless.registry import Registry, RegistrySettings
from lakeless.schema import FEATURES
from lakeless.score import ScoreSettings, ScoreStage
from lakeless.twin import TwinSettings, TwinStage

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.kafka, pytest.mark.timeout(600)]

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
INTERVAL = 0.5  # seconds between two events of one car: 40 events/s
BACKLOG_S = 90


@dataclass
class Pipeline:
    settings: Settings
    groups: dict[str, str]
    twin_url: str
    errors: list[BaseException]


def healthy_model() -> tuple[bytes, float]:
    """A z-score ONNX model of this fleet's healthy behaviour.

    Its threshold is the 99th percentile of healthy scores: a weak detector (a few false alarms),
    but one that flags failing cars within seconds, which is what the feed needs to show.
    """
    from lakeless.testing.models import make_test_onnx

    fleet = Fleet(CARS, seed=11, interval=INTERVAL, start=0)
    healthy = [e for _ in range(600) for e in fleet.step().events()]
    data = np.array([[getattr(e, f) for f in FEATURES] for e in healthy], np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0) + 1e-3
    onnx = make_test_onnx(mean=mean.tolist(), scale=(1 / std).tolist())
    scores, _ = OnnxScorer(onnx, len(FEATURES)).score(data)
    return onnx, float(np.quantile(scores, 0.99))


def produce_fleet(kafka: KafkaSettings, topic: str, stop: threading.Event) -> None:
    """Raw JSON events in real time after a backlog; one malformed record in 500 (the DLQ)."""
    fleet = Fleet(
        CARS,
        seed=11,
        interval=INTERVAL,
        start=int((time.time() - BACKLOG_S) * 1000),
        failure_rate=30.0,
        repair_after=60.0,
        ramp=5.0,
    )
    producer = make_producer(kafka, linger_ms=20)
    sent = 0
    while not stop.is_set():
        batch = fleet.step()
        wait = batch.ts[-1] / 1000 - time.time()
        if wait > 0:
            stop.wait(wait)
        for car_id, value in zip(batch.car_ids, batch.encode(), strict=True):
            sent += 1
            if sent % 500 == 0:
                value = value[: len(value) // 2]  # truncated JSON: dead-lettered
            while True:
                try:
                    producer.produce(topic, value, car_id.encode())
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
def pipeline(kafka: KafkaSettings, tmp_path: Path) -> Iterator[Pipeline]:
    run = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        raw=f"e2e-{run}-raw",
        clean=f"e2e-{run}-clean",
        dlq=f"e2e-{run}-dlq",
        models=f"e2e-{run}-models",
        anomalies=f"e2e-{run}-anomalies",
        scores=f"e2e-{run}-scores",
    )
    create_topics(
        kafka,
        [
            *(
                TopicSpec(name, PARTITIONS, 1)
                for name in (topics.raw, topics.clean, topics.dlq, topics.anomalies, topics.scores)
            ),
            TopicSpec(topics.models, 1, 1, {"max.message.bytes": str(64 * 1024 * 1024)}),
        ],
    )
    settings = Settings(kafka=kafka, topics=topics, data_dir=tmp_path / "data")
    groups = {stage: f"e2e-{run}-{stage}" for stage in ("preprocess", "score", "twin")}
    twin_url = f"sqlite:///{tmp_path / 'twin.sqlite'}"

    onnx, threshold = healthy_model()
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register(
            MODEL, onnx, threshold=threshold, stage="live", description="z-score baseline"
        )

    errors: list[BaseException] = []
    stop = threading.Event()
    preprocess = PreprocessStage(
        settings, PreprocessSettings(group_id=groups["preprocess"], max_future_ms=None)
    )
    score = ScoreStage(
        settings, ScoreSettings(group_id=groups["score"], model=MODEL, log_interval=0)
    )
    twin = TwinStage(settings, TwinSettings(url=twin_url, group_id=groups["twin"]))
    threads = [
        in_thread(lambda: produce_fleet(kafka, topics.raw, stop), errors, "fleet"),
        in_thread(lambda: preprocess.run(RunLimits()), errors, "preprocess"),
        in_thread(lambda: score.run(RunLimits()), errors, "score"),
        in_thread(lambda: twin.run(RunLimits()), errors, "twin"),
    ]
    try:
        yield Pipeline(settings, groups, twin_url, errors)
    finally:
        stop.set()
        for stage in (preprocess, score, twin):
            stage.request_stop()
        for thread in threads:
            thread.join(30)


def wait_until(page: Any, script: str, timeout_s: float, what: str, arg: Any = None) -> Any:
    try:
        return page.wait_for_function(script, arg=arg, timeout=timeout_s * 1000, polling=250)
    except playwright_api.TimeoutError as exc:
        stats = page.evaluate(
            "async () => { const s = await (await fetch('/api/stats')).json();"
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


def test_dashboard_in_a_browser(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make system-packages)")
    # The trainer the button starts inherits the environment: a lower threshold quantile makes
    # the new model (a few epochs on three minutes of data) flag failures soon.
    monkeypatch.setenv("LAKELESS_TRAIN_THRESHOLD_QUANTILE", "0.995")
    started = time.monotonic()
    config = DashboardSettings(
        port=0,
        twin_url=pipeline.twin_url,
        model=MODEL,
        preprocess_group=pipeline.groups["preprocess"],
        score_group=pipeline.groups["score"],
        twin_group=pipeline.groups["twin"],
        models_interval=2.0,
        backfill=30,
        train_minutes=3,
        train_epochs=3,
    )
    with (
        DashboardServer(pipeline.settings, config) as server,
        playwright_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(server.url)

            # Live numbers: every stage has a rate, and they change between two reads.
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
            assert f"{MODEL} v1" in page.text_content("#anomaly-feed tbody tr")
            assert page.get_attribute("#live-model", "data-version") == "1"

            # The fleet from the twin; a car's drill-down draws its charts.
            wait_until(
                page,
                f"() => document.querySelectorAll('#fleet tbody tr.car').length === {CARS}",
                60,
                "every car in the fleet table",
            )
            page.click("#fleet tbody tr.car >> nth=0")
            wait_until(
                page,
                "() => { const c = [...document.querySelectorAll('#car-charts canvas')];"
                " return c.length === 6 && c.every(x => x.dataset.drawn === '1'"
                " && Number(x.dataset.points) >= 10); }",
                30,
                "the car's charts",
            )
            for canvas in page.query_selector_all("#car-charts canvas"):
                assert canvas.evaluate(CANVAS_INK) > 500

            # The registry: v1 live. Then train on the last minutes and see v2 go live.
            page.wait_for_selector("#models tbody tr[data-version='1'][data-stage='live']")
            page.fill("#train-minutes", str(config.train_minutes))
            page.click("#train-button")
            wait_until(
                page,
                "() => ['succeeded', 'failed'].includes("
                "document.querySelector('#train-status').dataset.status)",
                420,
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
                60,
                "an anomaly scored by v2",
            )
            page.click("#fleet tbody tr.car >> nth=0")  # fresh charts for the picture
            wait_until(
                page,
                "() => [...document.querySelectorAll('#car-charts canvas')]"
                ".every(x => x.dataset.drawn === '1')",
                30,
                "the car's charts again",
            )
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("LAKELESS_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
        finally:
            browser.close()
    assert not pipeline.errors, pipeline.errors
    print(f"dashboard browser test: {time.monotonic() - started:.0f}s")
