"""Unit tests of the dashboard: rates and lag, the layout a schema gives, the API, the page.

No Kafka here: the app runs with its collector off and the states are fed by hand. The
collector against a real broker and the train button's child process are in
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
    DashboardState,
    GroupOffsets,
    PipelineViews,
    Sample,
    chart_groups,
    create_app,
    entity_noun,
    settings_env,
    stage_group,
)
from lakeless.dashboard._jobs import TrainJobs, _parse_summary
from lakeless.examples import car_fleet, example_schema
from lakeless.pipeline import Pipeline
from lakeless.registry import build_record
from lakeless.schema import CleanCodec, Decoder, PipelineSchema
from lakeless.schema.outputs import AnomalyRecord, OutputCodec, TopFeature
from lakeless.testing.readings import START, perfect_anomalies, readings
from lakeless.twin import open_store

PUMPS = example_schema("pumps")
CAR_FEATURES = car_fleet().feature_names


def anomaly(key: str = "car-1", step: int = 1, version: int = 1) -> AnomalyRecord:
    return OutputCodec(car_fleet()).anomaly(
        key=key,
        time=START + step * 1000,
        sequence=step,
        score=4.5,
        threshold=2.0,
        model="car-autoencoder",
        model_version=version,
        top_features=[TopFeature("coolant_temp", 130.0, 3.0)],
        label="overheating",
        source=f"sensor-clean[0]@{step}",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, dashboard={"collect": False, "interval": 0.05})


@pytest.fixture
def pumps() -> Pipeline:
    return Pipeline.new("pumps", PUMPS)


@pytest.fixture
def client(settings: Settings, pumps: Pipeline) -> Iterator[TestClient]:
    app = create_app(settings, [Pipeline.builtin(settings), pumps])
    with TestClient(app) as test_client:
        yield test_client


def views_of(client: TestClient) -> PipelineViews:
    views: PipelineViews = client.app.state.views  # type: ignore[attr-defined]
    return views


def state_of(client: TestClient, pipeline: str | None = None) -> DashboardState:
    view = views_of(client).get(pipeline)
    assert view is not None
    return view.state


def with_dashboard(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with other dashboard settings."""
    return settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update=changes)})


def fill_twin(settings: Settings, pipeline: Pipeline, entities: int = 3) -> list[Any]:
    schema = pipeline.schema
    events = readings(schema, entities=entities, seconds=20)
    url = settings.twin.database_url(settings.data_dir, pipeline.name)
    with open_store(url, schema, pipeline.name) as store:
        store.apply(
            Decoder(schema).decode([CleanCodec(schema).encode(e) for e in events]),
            perfect_anomalies(schema, events),
        )
    return events


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


def test_anomaly_feed_is_a_ring_newest_first_with_the_schemas_names() -> None:
    state = DashboardState(max_anomalies=3)
    state.add_anomalies([anomaly(step=i) for i in range(5)])
    items = state.anomalies()
    assert [a["seq"] for a in items] == [4, 3, 2]  # the car fleet's own field names
    assert [a["id"] for a in items] == [5, 4, 3]
    assert items[0]["car_id"] == "car-1" and items[0]["failure"] == "overheating"
    assert state.anomalies(after=4) == [items[0]]
    assert state.stats()["anomalies_seen"] == 5
    pumps = DashboardState()
    (record,) = perfect_anomalies(PUMPS, readings(PUMPS, entities=1, seconds=1), labelled=False)
    pumps.add_anomalies([record])
    assert set(pumps.anomalies()[0]) >= {"pump_id", "timestamp", "fault", "score"}


def test_models_revision_moves_only_on_change() -> None:
    state = DashboardState()
    one = build_record("car-autoencoder", 1, b"x", threshold=1.0, features=CAR_FEATURES).summary()
    state.set_models([one], {"car-autoencoder": 1})
    revision = state.models()["revision"]
    state.set_models([one], {"car-autoencoder": 1})
    assert state.models()["revision"] == revision
    state.set_models([], {}, error="registry down")  # keeps what it had, says why
    view = state.models()
    assert view["error"] == "registry down" and len(view["models"]) == 1
    state.set_models([one], {})
    assert state.models()["revision"] == revision + 1 and state.models()["error"] is None


# ---- the layout a schema gives -------------------------------------------------------------------


def test_one_chart_per_unit_of_the_features() -> None:
    charts = chart_groups(car_fleet())
    assert [c["unit"] for c in charts] == [
        "degC", "g/s", "%", "V", "A", "m/s", "um", "fraction", "psi", "g", "version",
    ]  # fmt: skip
    assert sum(len(c["features"]) for c in charts) == len(car_fleet().features)
    tires = charts[8]
    assert tires["title"] == "tire_pressure (psi)"
    assert tires["features"] == [f"tire_pressure_{i}_{j}" for i in (1, 2) for j in (1, 2)]
    assert tires["labels"] == ["1_1", "1_2", "2_1", "2_2"]
    assert charts[9]["title"] == "accelerometer (g)" and charts[9]["labels"][0] == "1_1"
    assert charts[0]["labels"] == ["coolant", "intake_air"]  # a shared "_temp" goes
    pumps = chart_groups(PUMPS)
    assert [c["features"] for c in pumps] == [
        ["flow_rate"],
        ["discharge_pressure", "suction_pressure"],
        ["motor_current"],
        ["bearing_temp"],
        ["vibration_rms"],
        ["speed_rpm"],
    ]
    assert pumps[0]["title"] == "flow_rate (m3/h)"


def test_features_without_a_unit_get_a_chart_each() -> None:
    from lakeless.schema import load_schema

    schema = load_schema(
        {
            "type": "record",
            "name": "Meter",
            "lakeless": {"key": "meter", "time": "t"},
            "fields": [
                {"name": "meter", "type": "string"},
                {"name": "t", "type": "long"},
                {"name": "a", "type": "double"},
                {"name": "b", "type": "double"},
                {"name": "on", "type": "boolean"},
            ],
        }
    )
    assert [(c["title"], c["features"]) for c in chart_groups(schema)] == [
        ("a", ["a"]),
        ("b", ["b"]),
        ("on", ["on"]),
    ]
    assert entity_noun(schema) == "meter"
    assert (entity_noun(car_fleet()), entity_noun(PUMPS)) == ("car", "pump")


def test_stage_groups_follow_the_pipeline_and_the_stage_settings(pumps: Pipeline) -> None:
    fleet = Pipeline.builtin(Settings())
    assert stage_group(Settings(), fleet, "score") == "lakeless-score"
    assert stage_group(Settings(), pumps, "score") == "lakeless-score.pumps"
    tuned = Settings(pipeline="pumps", score={"group_id": "my-scorers"})
    assert stage_group(tuned, pumps, "score") == "my-scorers"
    assert stage_group(tuned, fleet, "score") == "lakeless-score"  # another pipeline's


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


def test_behind_the_token_only_healthz_answers_without_it(settings: Settings) -> None:
    from lakeless._http import guarded
    from lakeless.config import HttpSettings

    access = HttpSettings(token="t")  # type: ignore[arg-type]
    with TestClient(guarded(create_app(settings), "0.0.0.0", access, "dashboard")) as client:
        assert client.get("/healthz").json() == {"status": "ok"}  # the probes' path
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", headers={"Authorization": "Bearer t"}).status_code == 200


def test_static_files_load_nothing_from_the_internet() -> None:
    files = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    for path in files:
        text = path.read_text()
        assert not re.search(r"https?://", text), path
        assert not re.search(r"""(src|href)=["']//""", text), path  # protocol-relative URLs


# ---- the API -----------------------------------------------------------------------------------


def test_pipelines_and_their_layout(client: TestClient) -> None:
    body = client.get("/api/pipelines").json()
    assert body["default"] == "car-fleet"
    fleet, pumps = body["pipelines"]
    assert (fleet["pipeline"], fleet["registered"], fleet["entity"]) == ("car-fleet", False, "car")
    assert (fleet["key"], fleet["time"], fleet["sequence"], fleet["label"]) == (
        "car_id",
        "ts",
        "seq",
        "failure",
    )
    assert fleet["context"] == ["model"] and fleet["model"] == "car-autoencoder"
    assert fleet["groups"] == {
        "preprocess": "lakeless-preprocess",
        "score": "lakeless-score",
        "twin": "lakeless-twin",
    }
    assert pumps["pipeline"] == "pumps" and pumps["registered"]
    assert (pumps["key"], pumps["sequence"], pumps["label"]) == ("pump_id", None, "fault")
    assert pumps["context"] == ["site", "pump_type"] and pumps["entity"] == "pump"
    assert pumps["groups"]["twin"] == "lakeless-twin.pumps"
    assert pumps["topics"]["anomalies"] == "pumps.anomalies"
    assert [f["unit"] for f in pumps["features"]][:2] == ["m3/h", "bar"]
    assert pumps["charts"] == chart_groups(PUMPS)


def test_stats_per_pipeline(client: TestClient) -> None:
    state_of(client).add_sample(Sample(at=0.0, ends={"sensor-raw": 10}, committed={}))
    state_of(client).add_sample(Sample(at=1.0, ends={"sensor-raw": 60}, committed={}))
    stats = client.get("/api/stats").json()
    assert [s["name"] for s in stats["stages"]] == ["ingest", "preprocess", "score", "twin"]
    assert stats["stages"][0]["rate"] == 50.0
    assert set(stats) >= {"topics", "history", "live_models", "models_revision", "error"}
    pumps = client.get("/api/stats", params={"pipeline": "pumps"}).json()
    assert pumps["stages"][0]["rate"] is None  # the car fleet's numbers are not the pumps'
    assert pumps["stages"][2]["group"] == "lakeless-score.pumps"
    assert pumps["stages"][2]["reads"] == ["pumps.clean"]
    missing = client.get("/api/stats", params={"pipeline": "nope"})
    assert missing.status_code == 404 and "car-fleet, pumps" in missing.json()["detail"]


def test_config_names_the_topics_groups_and_model(tmp_path: Path) -> None:
    topics = TopicSettings(raw="r", clean="c", dlq="d", anomalies="a")
    settings = Settings(
        data_dir=tmp_path,
        topics=topics,
        kafka=KafkaSettings(),
        score={"group_id": "g-score"},
        dashboard={"collect": False, "model": "m"},
    )
    with TestClient(create_app(settings)) as client:
        config = client.get("/api/config").json()
        assert config["model"] == "m" and config["pipeline"] == "car-fleet"
        assert config["topics"] == {"raw": "r", "clean": "c", "dlq": "d", "anomalies": "a"}
        score = client.get("/api/stats").json()["stages"][2]
        assert score["group"] == "g-score" and score["reads"] == ["c"]


def test_anomalies_per_pipeline(client: TestClient) -> None:
    state_of(client).add_anomalies([anomaly(step=i) for i in range(3)])
    body = client.get("/api/anomalies", params={"limit": 2}).json()
    assert body["count"] == 2 and body["last_id"] == 3
    first = body["anomalies"][0]
    assert first["seq"] == 2 and first["model_version"] == 1
    assert first["top_features"] == [{"name": "coolant_temp", "value": 130.0, "error": 3.0}]
    assert client.get("/api/anomalies", params={"after": 3}).json()["anomalies"] == []
    assert client.get("/api/anomalies", params={"pipeline": "pumps"}).json()["count"] == 0


@pytest.mark.parametrize("name", ["car-fleet", "pumps"])
def test_entities_and_one_entity_from_the_twin(
    client: TestClient, settings: Settings, pumps: Pipeline, name: str
) -> None:
    pipeline = Pipeline.builtin(settings) if name == "car-fleet" else pumps
    schema: PipelineSchema = pipeline.schema
    query = {"pipeline": name}
    twin_file = Path(settings.twin.database_url(settings.data_dir, name).removeprefix("sqlite:///"))
    missing = client.get("/api/entities", params=query).json()
    assert missing["available"] is False and "no twin database" in missing["error"]
    assert not twin_file.exists()  # not created by the page: its store is read-only

    events = fill_twin(settings, pipeline)
    listed = client.get("/api/entities", params=query).json()
    assert listed["available"] and listed["count"] == 3 and listed["key"] == schema.key
    opened = [s["key"] for s in listed["entities"] if s["episode_open"]]
    assert opened and [s["key"] for s in listed["entities"]][: len(opened)] == opened
    key = listed["entities"][-1]["key"]
    one = client.get(f"/api/entities/{key}", params={**query, "readings": 5}).json()
    assert one["entity"]["key"] == key and len(one["readings"]) == 5
    last = [e for e in events if getattr(e, schema.key) == key][-1]
    assert one["readings"][-1]["reading"] == {n: getattr(last, n) for n in schema.field_names}
    assert client.get("/api/entities/nope", params=query).status_code == 404
    if name == "car-fleet":  # the names the fleet's page always used still answer
        assert client.get("/api/cars").json() == listed
        assert client.get(f"/api/cars/{key}", params={"readings": 5}).json() == one


def test_a_twin_file_without_the_pipelines_tables(settings: Settings) -> None:
    url = f"sqlite:///{settings.data_dir / 'shared.sqlite'}"
    with open_store(url, car_fleet(), "car-fleet"):
        pass
    app = create_app(with_dashboard(settings, twin_url=url), [Pipeline.new("pumps", PUMPS)])
    with TestClient(app) as other:
        body = other.get("/api/entities").json()
    assert body["available"] is False and "no twin of pumps" in body["error"]


def test_twin_url_setting_is_used(tmp_path: Path, settings: Settings) -> None:
    db = tmp_path / "elsewhere" / "twin.db"
    schema = car_fleet()
    with open_store(f"sqlite:///{db}", schema) as store:
        events = readings(schema, entities=2, seconds=3)
        store.apply(Decoder(schema).decode([CleanCodec(schema).encode(e) for e in events]), [])
    with TestClient(create_app(with_dashboard(settings, twin_url=str(db)))) as client:
        assert client.get("/api/entities").json()["count"] == 2


def test_models_per_pipeline_with_report_images(client: TestClient, settings: Settings) -> None:
    png = settings.data_dir / "reports" / "car-autoencoder-v2" / "report.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    v1 = build_record(
        "car-autoencoder",
        1,
        b"a",
        threshold=1.0,
        features=CAR_FEATURES,
        metrics={"precision": 0.9, "recall": 0.8, "per_mode": {"overheating": {"recall": 0.7}}},
        lineage={"topic": "sensor-clean", "partitions": {"0": [0, 10]}, "num_records": 10},
    )
    v2 = build_record(
        "car-autoencoder",
        2,
        b"b",
        threshold=1.5,
        features=CAR_FEATURES,
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
    pumps = client.get("/api/models", params={"pipeline": "pumps"}).json()
    assert pumps["models"] == [] and pumps["model"] == "pumps-autoencoder"
    assert pumps["pipeline"] == "pumps"


def test_train_validates_its_input(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/train", json={"minutes": 0}).status_code == 422
        assert client.post("/api/train", json={}).status_code == 422
        unknown = client.post("/api/train", json={"minutes": 5, "pipeline": "nope"})
        assert unknown.status_code == 404
        assert client.get("/api/train/nope").status_code == 404
        assert client.get("/api/train").json() == {"jobs": []}
    with TestClient(create_app(with_dashboard(settings, train=False))) as client:
        assert client.post("/api/train", json={"minutes": 5}).status_code == 403
        assert client.get("/api/config").json()["train_enabled"] is False


def test_event_stream_per_pipeline(client: TestClient) -> None:
    state = state_of(client, "pumps")
    state.add_sample(Sample(at=0.0, ends={"pumps.raw": 0}, committed={}))
    (record,) = perfect_anomalies(PUMPS, readings(PUMPS, entities=1, seconds=1), labelled=False)
    state.add_anomalies([record, record])
    state_of(client).add_anomalies([anomaly(step=9)])  # the car fleet's: not in this stream
    events: list[dict[str, Any]] = []
    params = {"max_events": 2, "pipeline": "pumps"}
    with client.stream("GET", "/events", params=params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if len(events) == 1:
                    state.add_anomalies([record])
    assert len(events) == 2
    first, second = events
    assert [a["id"] for a in first["anomalies"]] == [2, 1]
    assert first["anomalies"][0]["pump_id"] == "pump-000"
    assert "history" in first["stats"] and "history" not in second["stats"]
    assert [a["id"] for a in second["anomalies"]] == [3]
    assert first["job"] is None
    assert first["stats"]["topics"]["pumps.raw"]["end"] == 0


# ---- training jobs (no process started here) ---------------------------------------------------


def test_train_command(settings: Settings) -> None:
    jobs = TrainJobs(settings, extra_args=["--epochs", "2"], python="py")
    assert jobs.command(10, "pumps", "pumps-ae") == [
        "py",
        "-m",
        "lakeless",
        "train",
        "--pipeline",
        "pumps",
        "--name",
        "pumps-ae",
        "--last",
        "10m",
        "--promote",
        "--json",
        "--epochs",
        "2",
    ]
    assert jobs.command(0.5, "car-fleet", "m")[9] == "30s"


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
        topics=TopicSettings(clean="my-clean", models="my-models", schemas="s", partitions=2),
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
    monkeypatch.setenv("LAKELESS_DASHBOARD__TRAIN", "false")
    config = Settings().dashboard
    assert config.port == 9999 and config.train is False
    with pytest.raises(ValueError):
        Settings(dashboard={"unknown": 1})


def test_cli_help_names_the_environment_variables() -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("PORT", "HOST", "TWIN_URL", "TIMEOUT", "TRAIN_EPOCHS", "MODEL", "TRAIN"):
        assert f"LAKELESS_DASHBOARD__{name}" in result.output
    assert "--pipeline" in result.output and "LAKELESS_PIPELINE" in result.output
    assert "--no-train" in result.output


def test_cli_refuses_an_invalid_value() -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", "--port", "70000"])
    assert result.exit_code != 0
    assert "LAKELESS_DASHBOARD__PORT=70000" in str(result.exception)
