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

from lakeless.lifecycle import RunLimits, Stopper
from lakeless.model import OnnxScorer
from lakeless.registry import ModelRecord, build_record
from lakeless.schema import FEATURES, make_example_json
from lakeless.score import RemoteScorer
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
from lakeless.testing.models import make_test_onnx

N = len(FEATURES)
MEAN = [float(i) for i in range(N)]


def record(version: int = 1, bias: float = 0.0, threshold: float = 5.0) -> ModelRecord:
    return build_record("m", version, make_test_onnx(bias=bias, mean=MEAN), threshold=threshold)


def rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.array(MEAN) + rng.normal(0, 2, (n, N))).astype(np.float32)


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
    with TestClient(create_app(None, ServeSettings(model="m"), live=live)) as client:
        yield client


def test_health_and_model_before_and_after_a_model() -> None:
    app = create_app(None, ServeSettings(model="m"))
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok", "ready": False, "model": None}
        assert client.get("/model").status_code == 503
        response = client.post("/score/batch", json={"features": [[0.0] * N]})
        assert response.status_code == 503 and "no live version" in response.json()["detail"]
        app.state.live.offer(record(threshold=2.5))
        assert client.get("/health").json() == {"status": "ok", "ready": True, "model": "m:1"}
        model = client.get("/model").json()
        assert (model["name"], model["version"], model["threshold"]) == ("m", 1, 2.5)
        assert model["features"] == list(FEATURES)
    assert app.state.stats.unavailable == 2


def test_score_one_event(client: TestClient) -> None:
    event = msgspec.json.decode(make_example_json(car_id="car-9", seq=4))
    answer = client.post("/score", json=event).json()
    features = np.array([[event[f] for f in FEATURES]], np.float32)
    scores, errors = expected(record(), features)
    assert answer["score"] == pytest.approx(float(scores[0]), rel=1e-6)
    assert answer["anomaly"] == (answer["score"] > 5.0)
    assert (answer["model"], answer["version"], answer["threshold"]) == ("m", 1, 5.0)
    assert (answer["car_id"], answer["seq"]) == ("car-9", 4)
    top = answer["top_features"]
    assert [t["name"] for t in top] == [FEATURES[i] for i in np.argsort(-errors[0])[:3]]
    assert [t["value"] for t in top] == pytest.approx([event[t["name"]] for t in top])


def test_score_one_event_needs_every_feature(client: TestClient) -> None:
    event = msgspec.json.decode(make_example_json())
    del event["speed"]
    response = client.post("/score", json=event)
    assert response.status_code == 400 and "speed" in response.json()["detail"]
    assert client.post("/score", content=b"{nope").status_code == 400


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
        (b"[1, 2]", "application/json", 400),
        (b"\x00" * 7, FEATURES_TYPE, 400),
        (b"1,2,3", "text/csv", 415),
    ],
)
def test_bad_batches_are_refused(
    client: TestClient, body: bytes, content_type: str, status: int
) -> None:
    response = client.post("/score/batch", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text


def test_too_many_rows(live: LiveModel) -> None:
    with TestClient(create_app(None, ServeSettings(model="m", max_rows=10), live=live)) as client:
        response = client.post("/score/batch", json={"features": rows(11).tolist()})
    assert response.status_code == 413


def test_swap_between_requests_and_refusal(client: TestClient, live: LiveModel) -> None:
    features = rows(5)
    assert live.offer(record(version=2, bias=1.0, threshold=7.0))
    answer = client.post("/score/batch", json={"features": features.tolist()}).json()
    assert (answer["version"], answer["threshold"]) == (2, 7.0)
    np.testing.assert_allclose(answer["scores"], expected(record(2, 1.0), features)[0], rtol=1e-6)
    broken = build_record("m", 3, b"not onnx", threshold=1.0)
    assert not live.offer(broken)
    assert client.get("/model").json()["version"] == 2
    assert (live.swaps, live.refused) == (2, 1)


def test_stopper_counts_scoring_requests(live: LiveModel) -> None:
    stopper = Stopper(RunLimits(count=2))
    with TestClient(create_app(None, ServeSettings(model="m"), live=live, stopper=stopper)) as c:
        c.get("/health")
        c.get("/model")
        c.post("/score/batch", json={"features": [[0.0] * N]})
        assert not stopper.done
        c.post("/score", content=make_example_json())
        assert stopper.done and stopper.reason is not None and "count" in stopper.reason
        assert c.app.state.stats.requests == 2  # type: ignore[attr-defined]


def test_http_scorer_carries_the_servers_model(client: TestClient, live: LiveModel) -> None:
    scorer = HttpScorer(client, "http://testserver/")
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
    app = create_app(None, ServeSettings(model="m"))
    with TestClient(app) as client:
        scorer = HttpScorer(client, "http://testserver", retry_for=0.3)
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
    unreachable = HttpScorer(httpx.Client(), f"http://127.0.0.1:{free_port()}", retry_for=0.2)
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
            deadline = time.monotonic() + 20
            while True:
                try:
                    http.get(f"{url}/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            for _ in range(3):
                assert http.post(f"{url}/score/batch", json={"features": [[0.0] * N]}).is_success

    caller = threading.Thread(target=call)
    caller.start()
    stats = run_serve(None, config, RunLimits(count=3, timeout=30), live=live)
    caller.join()
    assert stats.requests == 3 and "count" in stats.stopped_by

    began = time.monotonic()
    stats = run_serve(None, config, RunLimits(until_idle=0.5, timeout=30), live=live)
    assert "idle" in stats.stopped_by and time.monotonic() - began < 10
