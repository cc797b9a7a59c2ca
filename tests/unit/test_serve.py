"""The model server's HTTP API and its client, in process (no Kafka, no sockets but one test)."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator

import httpx
import msgspec
import numpy as np
import pytest
from fastapi.testclient import TestClient

from lakeless.examples import car_fleet, example_schema
from lakeless.lifecycle import RunLimits, Stopper
from lakeless.model import OnnxScorer
from lakeless.model.scoring import RemoteScorer
from lakeless.pipeline import Pipeline
from lakeless.registry import ModelRecord, build_record
from lakeless.serve import (
    HttpScorer,
    HttpScorerFactory,
    LiveModel,
    ModelServerError,
    ServeSettings,
    create_app,
    run_serve,
)
from lakeless.serve._wire import FEATURES_TYPE, SCORES_TYPE, decode_scores, encode_features
from lakeless.stack import free_port
from lakeless.testing.events import example_json, example_values
from lakeless.testing.models import FEATURES, make_test_onnx
from lakeless.testing.waiting import wait_for

N = len(FEATURES)
#: The car schema's typical values: what the test model deviates from.
MEAN = [float(example_values()[f]) for f in FEATURES]
LOW = np.array([car_fleet().field(f).min for f in FEATURES])
HIGH = np.array([car_fleet().field(f).max for f in FEATURES])
CONFIG = ServeSettings(model="m")


def record(version: int = 1, bias: float = 0.0, threshold: float = 5.0) -> ModelRecord:
    return build_record(
        "m", version, make_test_onnx(bias=bias, mean=MEAN), threshold=threshold, features=FEATURES
    )


def rows(n: int, seed: int = 0) -> np.ndarray:
    """Rows around `MEAN`, inside every feature's range."""
    rng = np.random.default_rng(seed)
    return np.clip(np.array(MEAN) + rng.normal(0, 2, (n, N)), LOW, HIGH).astype(np.float32)


def expected(model: ModelRecord, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    assert model.onnx is not None
    return OnnxScorer(model.onnx, N).score(features)


@pytest.fixture
def live() -> LiveModel:
    live = LiveModel()
    assert live.offer(record())
    return live


@pytest.fixture
def client(live: LiveModel) -> Iterator[TestClient]:
    with TestClient(create_app(None, config=CONFIG, live=live)) as client:
        yield client


def test_health_and_model_before_and_after_a_model() -> None:
    app = create_app(None, config=CONFIG)
    with TestClient(app) as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "ready": False,
            "model": None,
            "pipeline": "car-fleet",
        }
        assert client.get("/model").status_code == 503
        response = client.post("/score/batch", json={"features": [[0.0] * N]})
        assert response.status_code == 503 and "no live version" in response.json()["detail"]
        app.state.live.offer(record(threshold=2.5))
        assert client.get("/health").json()["model"] == "m:1"
        assert client.get("/health").json()["ready"] is True
        model = client.get("/model").json()
        assert (model["name"], model["version"], model["threshold"]) == ("m", 1, 2.5)
        assert model["features"] == list(FEATURES)
    assert app.state.stats.unavailable == 2


def test_score_one_event(client: TestClient) -> None:
    event = msgspec.json.decode(example_json(car_id="car-9", seq=4, ts=1234))
    answer = client.post("/score", json=event).json()
    features = np.array([[event[f] for f in FEATURES]], np.float32)
    scores, errors = expected(record(), features)
    assert answer["score"] == pytest.approx(float(scores[0]), rel=1e-6)
    assert answer["anomaly"] == (answer["score"] > 5.0)
    assert (answer["model"], answer["version"], answer["threshold"]) == ("m", 1, 5.0)
    assert (answer["car_id"], answer["seq"], answer["ts"]) == ("car-9", 4, 1234)
    top = answer["top_features"]
    assert [t["name"] for t in top] == [FEATURES[i] for i in np.argsort(-errors[0])[:3]]
    assert [t["value"] for t in top] == pytest.approx([event[t["name"]] for t in top])


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"speed": None}, "missing_field", "speed"),  # None: the field is left out
        ({"oil": 1.0}, "unknown_field", "oil"),
        ({"speed": 500.0}, "out_of_range", "speed"),
        ({"speed": "fast"}, "wrong_type", "speed"),
        ({"car_id": "car/1"}, "invalid_key", "car_id"),
    ],
)
def test_score_one_event_is_validated_like_preprocess(
    client: TestClient, change: dict[str, object], reason: str, field: str
) -> None:
    event = msgspec.json.decode(example_json())
    for name, value in change.items():
        if value is None:
            del event[name]
        else:
            event[name] = value
    response = client.post("/score", json=event)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["reason"] == reason
    assert response.json()["detail"]["field"] == field


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{nope", "invalid_json"), (b'{"speed": NaN}', "not_finite"), (b"[1]", "not_an_object")],
)
def test_score_one_event_refuses_what_is_not_an_event(
    client: TestClient, body: bytes, reason: str
) -> None:
    response = client.post("/score", content=body)
    assert response.status_code == 422 and response.json()["detail"]["reason"] == reason


def test_batch_forms_agree(client: TestClient) -> None:
    features = rows(50)
    scores, errors = expected(record(), features)
    columnar = client.post("/score/batch", json={"features": features.tolist()}).json()
    events = [
        {"car_id": f"c{i}", "ts": i, "seq": i, **dict(zip(FEATURES, row.tolist(), strict=True))}
        for i, row in enumerate(features)
    ]
    listed = client.post("/score/batch", json=events).json()
    binary = client.post(
        "/score/batch",
        content=encode_features(features),
        headers={"content-type": FEATURES_TYPE},
    )
    assert binary.headers["content-type"] == SCORES_TYPE
    assert binary.headers["x-lakeless-version"] == "1"
    raw_scores, raw_errors = decode_scores(binary.content, N)
    np.testing.assert_array_equal(raw_scores, scores)
    np.testing.assert_array_equal(raw_errors, errors)
    assert columnar == listed
    np.testing.assert_allclose(columnar["scores"], scores, rtol=1e-6)
    flags = scores > 5.0
    assert 0 < flags.sum() < len(flags)  # some anomalies, some not
    assert columnar["anomaly"] == flags.tolist()
    for flag, top in zip(flags, columnar["top_features"], strict=True):
        assert len(top) == (3 if flag else 0)
    assert "feature_errors" not in columnar
    with_errors = client.post(
        "/score/batch", params={"errors": "true"}, json={"features": features.tolist()}
    ).json()
    np.testing.assert_allclose(with_errors["feature_errors"], errors, rtol=1e-6)


def test_empty_batch(client: TestClient) -> None:
    answer = client.post("/score/batch", json={"features": []}).json()
    assert answer["scores"] == [] and answer["version"] == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"features": [[1.0, 2.0]]}', "application/json", 400),
        (b'{"features": [[1.0], [1.0, 2.0]]}', "application/json", 400),
        (b'{"rows": []}', "application/json", 400),
        (b"[1, 2]", "application/json", 422),  # events are validated: not objects
        (b"\x00" * 7, FEATURES_TYPE, 400),
        (b"1,2,3", "text/csv", 415),
    ],
)
def test_bad_batches_are_refused(
    client: TestClient, body: bytes, content_type: str, status: int
) -> None:
    response = client.post("/score/batch", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text


def test_out_of_range_rows_are_refused(client: TestClient) -> None:
    features = rows(3)
    features[2, FEATURES.index("speed")] = 500.0
    response = client.post("/score/batch", json={"features": features.tolist()})
    assert response.status_code == 422
    assert response.json()["detail"] == {
        "reason": "out_of_range",
        "field": "speed",
        "index": 2,
        "detail": "speed: 500.0 is outside [0.0, 120.0]",
    }
    events = [example_values(), example_values(coolant_temp=999.0)]
    listed = client.post("/score/batch", json=events)
    assert listed.status_code == 422
    assert listed.json()["detail"]["index"] == 1
    assert listed.json()["detail"]["reason"] == "out_of_range"


def test_too_many_rows(live: LiveModel) -> None:
    config = ServeSettings(model="m", max_rows=10)
    with TestClient(create_app(None, config=config, live=live)) as client:
        response = client.post("/score/batch", json={"features": rows(11).tolist()})
    assert response.status_code == 413


def test_swap_between_requests_and_refusal(client: TestClient, live: LiveModel) -> None:
    features = rows(5)
    assert live.offer(record(version=2, bias=1.0, threshold=7.0))
    answer = client.post("/score/batch", json={"features": features.tolist()}).json()
    assert (answer["version"], answer["threshold"]) == (2, 7.0)
    np.testing.assert_allclose(answer["scores"], expected(record(2, 1.0), features)[0], rtol=1e-6)
    broken = build_record("m", 3, b"not onnx", threshold=1.0, features=FEATURES)
    assert not live.offer(broken)
    assert client.get("/model").json()["version"] == 2
    assert (live.swaps, live.refused) == (2, 1)


def test_stopper_counts_scoring_requests(live: LiveModel) -> None:
    stopper = Stopper(RunLimits(count=2))
    with TestClient(create_app(None, config=CONFIG, live=live, stopper=stopper)) as c:
        c.get("/health")
        c.get("/model")
        c.post("/score/batch", json={"features": [[0.0] * N]})
        assert not stopper.done
        c.post("/score", content=example_json())
        assert stopper.done and stopper.reason is not None and "count" in stopper.reason
        assert c.app.state.stats.requests == 2  # type: ignore[attr-defined]


def test_http_scorer_carries_the_servers_model(client: TestClient, live: LiveModel) -> None:
    scorer = HttpScorer(client, "http://testserver/", N)
    assert isinstance(scorer, RemoteScorer) and scorer.scored_by is None
    features = rows(100)
    scores, errors = scorer.score(features)
    want_scores, want_errors = expected(record(), features)
    np.testing.assert_array_equal(scores, want_scores)
    np.testing.assert_array_equal(errors, want_errors)
    assert scorer.scored_by is not None and scorer.scored_by.ref == "m:1"
    live.offer(record(version=2, bias=0.5, threshold=9.5))
    scorer.score(features)
    assert scorer.scored_by is not None
    assert (scorer.scored_by.version, scorer.scored_by.threshold) == (2, 9.5)


def test_http_scorer_retries_then_gives_up() -> None:
    app = create_app(None, config=CONFIG)
    with TestClient(app) as client:
        scorer = HttpScorer(client, "http://testserver", N, retry_for=0.3)
        began = time.monotonic()
        with pytest.raises(ModelServerError, match="HTTP 503"):
            scorer.score(rows(2))
        assert time.monotonic() - began >= 0.1  # it retried
        # A model that arrives while the client retries is used.
        timer = threading.Timer(0.2, app.state.live.offer, args=(record(),))
        timer.start()
        scorer.retry_for = 10
        assert len(scorer.score(rows(2))[0]) == 2
        timer.join()
    unreachable = HttpScorer(httpx.Client(), f"http://127.0.0.1:{free_port()}", N, retry_for=0.2)
    with pytest.raises(ModelServerError, match="ConnectError"):
        unreachable.score(rows(1))


def test_http_scorer_factory_pickles_without_its_client() -> None:
    factory = HttpScorerFactory("http://127.0.0.1:1")
    scorer = factory(record())
    assert isinstance(scorer, HttpScorer) and factory._client is not None
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.url == factory.url and copy._client is None
    factory.close()


def test_run_serve_stops_on_count_and_on_idle(live: LiveModel) -> None:
    port = free_port()
    config = ServeSettings(model="m", port=port)

    def call() -> None:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client() as http:

            def answers() -> bool:
                try:
                    http.get(f"{url}/health")
                except httpx.TransportError:
                    return False
                return True

            wait_for(answers, 20, "the server answered", interval=0.05)
            for _ in range(3):
                assert http.post(f"{url}/score/batch", json={"features": [[0.0] * N]}).is_success

    caller = threading.Thread(target=call)
    caller.start()
    stats = run_serve(None, None, RunLimits(count=3, timeout=30), live=live, config=config)
    caller.join()
    assert stats.requests == 3 and "count" in stats.stopped_by

    began = time.monotonic()
    idle = ServeSettings(model="m", port=port, until_idle=0.5, timeout=30)
    stats = run_serve(None, live=live, config=idle)  # the limits of the settings
    assert "idle" in stats.stopped_by and time.monotonic() - began < 10


class Fixed:
    """Gives set scores, whatever the rows."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.array(scores, np.float32)

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.scores[: len(features)], np.ones_like(features, np.float32)


def test_a_non_finite_score_is_an_anomaly() -> None:
    live = LiveModel(lambda _record: Fixed([float("nan"), 1.0, float("inf")]))
    assert live.offer(record())
    with TestClient(create_app(None, config=CONFIG, live=live)) as client:
        answer = client.post("/score/batch", json={"features": rows(3).tolist()}).json()
        one = client.post("/score", content=example_json()).json()
    assert answer["anomaly"] == [True, False, True]
    assert [len(t) for t in answer["top_features"]] == [3, 0, 3]
    assert one["anomaly"] is True


def test_another_pipeline_echoes_its_own_field_names() -> None:
    pumps = example_schema("pumps")
    pipeline = Pipeline.new("pumps", pumps)
    names = pumps.feature_names
    mean = [float(pumps.field(f).example) for f in names]
    pump_model = build_record(
        "pm", 1, make_test_onnx(len(names), mean=mean), threshold=1.0, features=names,
        pipeline="pumps",
    )  # fmt: skip
    live = LiveModel()
    assert live.offer(pump_model)
    app = create_app(None, pipeline, ServeSettings(), live=live)
    with TestClient(app) as client:
        assert client.get("/health").json()["pipeline"] == "pumps"
        event = example_values(pumps, pump_id="p-1", timestamp=77, bearing_temp=140.0)
        answer = client.post("/score", json=event).json()
        assert (answer["pump_id"], answer["timestamp"]) == ("p-1", 77)
        assert "seq" not in answer and "car_id" not in answer
        assert answer["anomaly"] is True and answer["top_features"][0]["name"] == "bearing_temp"
        assert answer["score"] == pytest.approx((140.0 - 45.0) ** 2 / len(names), rel=1e-5)
        refused = client.post("/score", json={**event, "fault": "broken"})
        assert refused.status_code == 422 and refused.json()["detail"]["field"] == "fault"


def test_a_model_of_fewer_inputs_gets_its_own_columns(live: LiveModel) -> None:
    subset = (FEATURES[6], FEATURES[0])  # speed, coolant_temp
    small = build_record(
        "m", 2, make_test_onnx(2, mean=[MEAN[6], MEAN[0]]), threshold=5.0, features=subset
    )
    assert live.offer(small)
    features = rows(20)
    want, _ = OnnxScorer(make_test_onnx(2, mean=[MEAN[6], MEAN[0]]), 2).score(features[:, [6, 0]])
    with TestClient(create_app(None, config=CONFIG, live=live)) as client:
        assert client.get("/model").json()["features"] == list(subset)
        events = [
            {**example_values(), **dict(zip(FEATURES, row.tolist(), strict=True))}
            for row in features
        ]
        listed = client.post("/score/batch", json=events)
        assert listed.status_code == 200, listed.text
        # The compact form takes one number per model input, in the model's order.
        compact = client.post("/score/batch", json={"features": features[:, [6, 0]].tolist()})
        wrong = client.post("/score/batch", json={"features": features.tolist()})
        one = client.post("/score", json=events[0]).json()
    np.testing.assert_allclose(listed.json()["scores"], want, rtol=1e-6)
    np.testing.assert_allclose(compact.json()["scores"], want, rtol=1e-6)
    assert wrong.status_code == 400 and "speed, coolant_temp" in wrong.json()["detail"]
    assert one["score"] == pytest.approx(float(want[0]), rel=1e-6)
