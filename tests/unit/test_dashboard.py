"""Unit tests of the dashboard: the state's rates and lag, the API, the static page, settings.

No Kafka here: the app runs with its collector off and the state is fed by hand. The collector
against a real broker and the train button's child process are in
``tests/integration/test_dashboard.py``; the page in a real browser in ``tests/e2e``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lakeless.cli import app as cli_app
from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.dashboard import (
    STATIC_DIR,
    DashboardSettings,
    DashboardState,
    GroupOffsets,
    Sample,
    create_app,
    settings_env,
)
from lakeless.dashboard._jobs import TrainJobs, _parse_summary
from lakeless.fleet import fleet_events
from lakeless.registry import build_record
from lakeless.schema import decode_clean_batch, encode_clean
from lakeless.score import Anomaly, TopFeature
from lakeless.twin import TwinStore

T0 = 1_700_000_000_000


def anomaly(car: str = "car-1", seq: int = 1, version: int = 1) -> Anomaly:
    return Anomaly(
        car_id=car,
        ts=T0 + seq * 1000,
        seq=seq,
        score=4.5,
        threshold=2.0,
        model="car-autoencoder",
        model_version=version,
        top_features=[TopFeature("coolant_temp", 130.0, 3.0)],
        failure="overheating",
        source=f"sensor-clean[0]@{seq}",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, DashboardSettings(collect=False, interval=0.05))
    with TestClient(app) as test_client:
        yield test_client


def state_of(client: TestClient) -> DashboardState:
    state: DashboardState = client.app.state.dashboard  # type: ignore[attr-defined]
    return state


# ---- the state ---------------------------------------------------------------------------------


def test_rates_and_lag_per_stage() -> None:
    state = DashboardState(rate_window=10)
    state.add_sample(
        Sample(
            at=0.0,
            ends={"sensor-raw": 1000, "sensor-clean": 900, "sensor-dlq": 10, "anomalies": 5},
            committed={
                ("lakeless-preprocess", "sensor-raw"): GroupOffsets(900, 100),
                ("lakeless-score", "sensor-clean"): GroupOffsets(800, 100),
            },
        )
    )
    state.add_sample(
        Sample(
            at=2.0,
            ends={"sensor-raw": 1400, "sensor-clean": 1290, "sensor-dlq": 20, "anomalies": 9},
            committed={
                ("lakeless-preprocess", "sensor-raw"): GroupOffsets(1300, 100),
                ("lakeless-score", "sensor-clean"): GroupOffsets(1200, 90),
                ("lakeless-twin", "sensor-clean"): GroupOffsets(1290, 0),
                ("lakeless-twin", "anomalies"): GroupOffsets(9, 0),
            },
        )
    )
    stats = state.stats()
    stages = {s["name"]: s for s in stats["stages"]}
    assert stages["ingest"]["rate"] == 200.0  # what it wrote to sensor-raw
    assert stages["preprocess"] == {
        "name": "preprocess",
        "group": "lakeless-preprocess",
        "reads": ["sensor-raw"],
        "rate": 200.0,
        "lag": 100,
        "out": {"sensor-clean": 195.0, "sensor-dlq": 5.0},
    }
    assert stages["score"]["rate"] == 200.0 and stages["score"]["lag"] == 90
    assert stages["score"]["out"] == {"anomalies": 2.0}
    # The twin's group appeared in the second sample only: a lag, but no rate yet.
    assert stages["twin"]["rate"] is None and stages["twin"]["lag"] == 0
    assert stats["topics"]["sensor-raw"] == {"role": "raw", "end": 1400, "rate": 200.0}
    assert stats["history"]["ingest"] == [0.0, 200.0]


def test_rate_window_slides() -> None:
    state = DashboardState(rate_window=2)
    end = 0
    for second in range(6):
        end += 100 if second < 3 else 400  # 100 events a second, then 400
        state.add_sample(Sample(at=float(second), ends={"sensor-raw": end}, committed={}))
    assert state.stats()["topics"]["sensor-raw"]["rate"] == 400.0  # only the last 2 s count


def test_a_failed_reading_shows_its_error() -> None:
    state = DashboardState()
    state.add_sample(Sample(at=0.0, ends={}, committed={}, error="end offsets: timed out"))
    stats = state.stats()
    assert stats["error"] == "end offsets: timed out"
    assert all(s["rate"] is None and s["lag"] is None for s in stats["stages"])


def test_anomaly_feed_is_a_ring_newest_first() -> None:
    state = DashboardState(max_anomalies=3)
    state.add_anomalies([anomaly(seq=i) for i in range(5)])
    items = state.anomalies()
    assert [a["seq"] for a in items] == [4, 3, 2]
    assert [a["id"] for a in items] == [5, 4, 3]
    assert state.anomalies(after=4) == [items[0]]
    assert state.stats()["anomalies_seen"] == 5


def test_models_revision_moves_only_on_change() -> None:
    state = DashboardState()
    one = build_record("car-autoencoder", 1, b"x", threshold=1.0).summary()
    state.set_models([one], {"car-autoencoder": 1})
    revision = state.models()["revision"]
    state.set_models([one], {"car-autoencoder": 1})
    assert state.models()["revision"] == revision
    state.set_models([], {}, error="registry down")  # keeps what it had, says why
    view = state.models()
    assert view["error"] == "registry down" and len(view["models"]) == 1
    state.set_models([one], {})
    assert state.models()["revision"] == revision + 1 and state.models()["error"] is None


# ---- the page ----------------------------------------------------------------------------------


def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        response = client.get(asset)
        assert response.status_code == 200, asset
    assert client.get("/static/app.js").headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_static_files_load_nothing_from_the_internet() -> None:
    files = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    for path in files:
        text = path.read_text()
        assert not re.search(r"https?://", text), path
        assert not re.search(r"""(src|href)=["']//""", text), path  # protocol-relative URLs


def test_static_files_ship_in_the_package() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"dashboard/static/*"' in pyproject


# ---- the API -----------------------------------------------------------------------------------


def test_stats_endpoint(client: TestClient) -> None:
    state_of(client).add_sample(Sample(at=0.0, ends={"sensor-raw": 10}, committed={}))
    state_of(client).add_sample(Sample(at=1.0, ends={"sensor-raw": 60}, committed={}))
    stats = client.get("/api/stats").json()
    assert [s["name"] for s in stats["stages"]] == ["ingest", "preprocess", "score", "twin"]
    assert stats["stages"][0]["rate"] == 50.0
    assert set(stats) >= {"topics", "history", "live_models", "models_revision", "error"}


def test_config_names_the_topics_groups_and_model(settings: Settings) -> None:
    topics = TopicSettings(raw="r", clean="c", dlq="d", anomalies="a")
    app = create_app(
        Settings(data_dir=settings.data_dir, topics=topics, kafka=KafkaSettings()),
        DashboardSettings(collect=False, model="m", score_group="g-score"),
    )
    with TestClient(app) as client:
        config = client.get("/api/config").json()
        assert config["model"] == "m"
        assert config["topics"] == {"raw": "r", "clean": "c", "dlq": "d", "anomalies": "a"}
        score = client.get("/api/stats").json()["stages"][2]
        assert score["group"] == "g-score" and score["reads"] == ["c"]


def test_anomalies_endpoint(client: TestClient) -> None:
    state_of(client).add_anomalies([anomaly(seq=i) for i in range(3)])
    body = client.get("/api/anomalies", params={"limit": 2}).json()
    assert body["count"] == 2 and body["last_id"] == 3
    first = body["anomalies"][0]
    assert first["seq"] == 2 and first["model_version"] == 1
    assert first["top_features"] == [{"name": "coolant_temp", "value": 130.0, "error": 3.0}]
    assert client.get("/api/anomalies", params={"after": 3}).json()["anomalies"] == []


def test_fleet_and_car_from_the_twin(settings: Settings) -> None:
    url = f"sqlite:///{settings.data_dir / 'twin.sqlite'}"
    app = create_app(settings, DashboardSettings(collect=False))
    with TestClient(app) as client:
        missing = client.get("/api/cars").json()
        assert missing["available"] is False and "no twin database" in missing["error"]
        assert not (settings.data_dir / "twin.sqlite").exists()  # not created by the page

        evs = list(fleet_events(cars=3, seed=2, duration=20, start=T0))
        with TwinStore.open(url) as store:
            store.apply(decode_clean_batch([encode_clean(e) for e in evs]), [anomaly("car-00001")])
        fleet = client.get("/api/cars").json()
        assert fleet["available"] and fleet["count"] == 3
        assert fleet["cars"][0]["car_id"] == "car-00001"  # open episode first
        one = client.get("/api/cars/car-00002", params={"readings": 5}).json()
        assert one["car"]["car_id"] == "car-00002" and len(one["readings"]) == 5
        assert one["readings"][-1]["seq"] == max(e.seq for e in evs if e.car_id == "car-00002")
        assert "speed" in one["readings"][0]["features"]
        assert client.get("/api/cars/nope").status_code == 404


def test_twin_url_setting_is_used(tmp_path: Path, settings: Settings) -> None:
    db = tmp_path / "elsewhere" / "twin.db"
    with TwinStore.open(f"sqlite:///{db}") as store:
        evs = list(fleet_events(cars=2, seed=1, duration=3, start=T0))
        store.apply(decode_clean_batch([encode_clean(e) for e in evs]), [])
    app = create_app(settings, DashboardSettings(collect=False, twin_url=str(db)))
    with TestClient(app) as client:
        assert client.get("/api/cars").json()["count"] == 2


def test_models_with_report_images(client: TestClient, settings: Settings) -> None:
    png = settings.data_dir / "reports" / "car-autoencoder-v2" / "report.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    v1 = build_record(
        "car-autoencoder",
        1,
        b"a",
        threshold=1.0,
        metrics={"precision": 0.9, "recall": 0.8, "per_mode": {"overheating": {"recall": 0.7}}},
        lineage={"topic": "sensor-clean", "partitions": {"0": [0, 10]}, "num_records": 10},
    )
    v2 = build_record(
        "car-autoencoder",
        2,
        b"b",
        threshold=1.5,
        report={"files": {"png": str(png), "json": str(png.with_suffix(".json"))}},
    )
    state_of(client).set_models([v2.summary(), v1.summary()], {"car-autoencoder": 2})
    body = client.get("/api/models").json()
    assert body["live"] == {"car-autoencoder": 2} and body["model"] == "car-autoencoder"
    newest, oldest = body["models"]
    assert newest["version"] == 2
    assert newest["report_image"] == "/api/models/car-autoencoder/2/report.png"
    assert oldest["report_image"] is None and oldest["metrics"]["recall"] == 0.8
    assert oldest["lineage"]["num_records"] == 10
    assert "normalization" not in oldest and "onnx" not in oldest
    image = client.get(newest["report_image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert client.get("/api/models/car-autoencoder/1/report.png").status_code == 404
    assert client.get("/api/models/car-autoencoder/9/report.png").status_code == 404
    assert client.get("/api/stats").json()["live_models"] == {"car-autoencoder": 2}


def test_train_validates_its_input(settings: Settings) -> None:
    app = create_app(settings, DashboardSettings(collect=False))
    with TestClient(app) as client:
        assert client.post("/api/train", json={"minutes": 0}).status_code == 422
        assert client.post("/api/train", json={}).status_code == 422
        assert client.get("/api/train/nope").status_code == 404
        assert client.get("/api/train").json() == {"jobs": []}
    app = create_app(settings, DashboardSettings(collect=False, train_enabled=False))
    with TestClient(app) as client:
        assert client.post("/api/train", json={"minutes": 5}).status_code == 403


def test_event_stream(client: TestClient) -> None:
    state = state_of(client)
    state.add_sample(Sample(at=0.0, ends={"sensor-raw": 0}, committed={}))
    state.add_anomalies([anomaly(seq=1), anomaly(seq=2)])
    events: list[dict[str, Any]] = []
    with client.stream("GET", "/events", params={"max_events": 2}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if len(events) == 1:
                    state.add_anomalies([anomaly(seq=3)])
    assert len(events) == 2
    first, second = events
    assert [a["seq"] for a in first["anomalies"]] == [2, 1]
    assert "history" in first["stats"] and "history" not in second["stats"]
    assert [a["seq"] for a in second["anomalies"]] == [3]
    assert first["job"] is None


# ---- training jobs (no process started here) ---------------------------------------------------


def test_train_command(settings: Settings) -> None:
    jobs = TrainJobs(settings, model="m", extra_args=["--epochs", "2"], python="py")
    assert jobs.command(10) == [
        "py",
        "-m",
        "lakeless",
        "train",
        "--last",
        "10m",
        "--promote",
        "--json",
        "--name",
        "m",
        "--epochs",
        "2",
    ]
    assert jobs.command(0.5)[5] == "30s"


def test_settings_travel_to_the_child_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = Settings(
        kafka=KafkaSettings(
            bootstrap_servers="b:1",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="u",
            sasl_password="s3cret",  # type: ignore[arg-type]
            extra={"linger.ms": "7"},
        ),
        topics=TopicSettings(clean="my-clean", models="my-models", partitions=2),
        data_dir=tmp_path,
    )
    for name in list(os.environ):
        if name.startswith("LAKELESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LAKELESS_KAFKA__BOOTSTRAP_SERVERS", "ignored:9")  # what the parent had
    env = settings_env(original)
    monkeypatch.delenv("LAKELESS_KAFKA__BOOTSTRAP_SERVERS")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child == original
    assert child.kafka.sasl_password is not None
    assert child.kafka.sasl_password.get_secret_value() == "s3cret"


def test_parse_summary() -> None:
    summary = {"ref": "m:3", "version": 3}
    assert _parse_summary(json.dumps(summary, indent=2)) == summary
    noisy = "Epoch 1/2\nsomething {odd}\n" + json.dumps(summary, indent=2) + "\n"
    assert _parse_summary(noisy) == summary
    assert _parse_summary("") is None
    assert _parse_summary("no json here") is None


# ---- settings and CLI --------------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELESS_DASHBOARD__PORT", "9999")
    monkeypatch.setenv("LAKELESS_DASHBOARD__TWIN_GROUP", "t")
    config = DashboardSettings()
    assert config.port == 9999 and config.stages()[3].group == "t"
    with pytest.raises(ValueError):
        DashboardSettings(unknown=1)  # type: ignore[call-arg]


def test_cli_help_names_the_environment_variables() -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("PORT", "HOST", "TWIN_URL", "TIMEOUT", "TRAIN_EPOCHS", "MODEL"):
        assert f"LAKELESS_DASHBOARD__{name}" in result.output
