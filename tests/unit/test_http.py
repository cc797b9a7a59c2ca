"""The HTTP endpoints' access rules: loopback by default, a bearer token everywhere else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from lakeless._http import HttpServer, guarded, is_loopback
from lakeless.config import HttpSettings
from lakeless.errors import ConfigError


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/data")
    def data() -> dict[str, int]:
        return {"value": 42}

    return api


def test_loopback_needs_no_token_and_other_interfaces_refuse_to_start_without_one() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    plain = app()
    assert guarded(plain, "127.0.0.1", HttpSettings(), "test") is plain
    with pytest.raises(ConfigError, match=r"needs a bearer token.*LAKELESS_HTTP__TOKEN"):
        guarded(plain, "0.0.0.0", HttpSettings(), "test")
    with pytest.raises(ConfigError, match="needs a bearer token"):
        guarded(plain, "127.0.0.1", HttpSettings(require_token=True), "test")


def test_a_request_without_the_token_is_refused_on_a_real_server(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    access = HttpSettings(token_file=token_file, require_token=True)
    with HttpServer(app(), "127.0.0.1", 0, name="test", access=access) as server:
        url = server.url
        assert httpx.get(f"{url}/data").status_code == 401
        wrong = httpx.get(f"{url}/data", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "s3cret" not in wrong.text
        good = httpx.get(f"{url}/data", headers={"Authorization": "Bearer s3cret-token"})
        assert good.status_code == 200 and good.json() == {"value": 42}
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no token


def test_a_browser_passes_the_token_once_in_the_url_then_by_cookie() -> None:
    access = HttpSettings(token=SecretStr("s3cret-token"), require_token=True)
    with HttpServer(app(), "127.0.0.1", 0, name="test", access=access) as server:
        with httpx.Client(base_url=server.url) as browser:
            assert browser.get("/data", params={"token": "nope"}).status_code == 401
            first = browser.get("/data", params={"token": "s3cret-token"})
            assert first.status_code == 200
            cookie = first.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert browser.get("/data").status_code == 200  # the cookie, no header
        forged = httpx.get(f"{server.url}/data", cookies={"lakeless_token": "nope"})
        assert forged.status_code == 401


def test_the_token_comes_from_the_settings_or_a_file(tmp_path: Path) -> None:
    assert HttpSettings(token=SecretStr("abc")).bearer() == "abc"
    assert "abc" not in repr(HttpSettings(token=SecretStr("abc")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        HttpSettings(token_file=empty).bearer()
    with pytest.raises(ConfigError, match="cannot read"):
        HttpSettings(token_file=tmp_path / "missing").bearer()


def test_the_metrics_endpoint_shows_its_metrics_only_with_the_token() -> None:
    from lakeless.kafka import StageMetrics
    from lakeless.stack import free_port

    metrics = StageMetrics("probe")
    url = metrics.serve(
        free_port(), "127.0.0.1", HttpSettings(token=SecretStr("t"), require_token=True)
    )
    try:
        base = url.removesuffix("/metrics")
        for path in ("/health", "/healthz"):  # open for probes, and they say only "ok"
            answer = httpx.get(base + path, timeout=5)
            assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
        assert httpx.get(url, timeout=5).status_code == 401
        answer = httpx.get(url, headers={"Authorization": "Bearer t"}, timeout=5)
        assert answer.status_code == 200 and "lakeless_probe_events_total" in answer.text
    finally:
        metrics.close()
