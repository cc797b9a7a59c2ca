"""One way to run an HTTP app: uvicorn, stopped by the lakeless stop rules, behind a token.

`HttpServer` serves an ASGI app (the twin API, the dashboard, the model server, the metrics)
until a `lakeless.lifecycle.Stopper` says stop (a limit, SIGTERM/SIGINT, `stop`), in the
foreground (`run`) or on a daemon thread (`start`). Every way ends the same: uvicorn's graceful
shutdown (stop accepting, finish the requests in flight), then `run` returns the reason; a
signal ends the process with status 0, not by re-raising the signal as plain uvicorn does.

Access (`lakeless.config.HttpSettings`): on loopback anyone on the machine may call; bound to
another interface (or with ``require_token``) a bearer token is required, the server refuses to
start without one, and a request without the token gets 401 (``/health`` stays open, for
probes). The token is compared in constant time and never logged.

A browser cannot set headers on a page load or an ``EventSource``: it opens
``http://host:port/?token=TOKEN`` once, and the answer sets the token as an ``HttpOnly``,
``SameSite=Strict`` cookie that every later request of that page carries.
"""

from __future__ import annotations

import contextlib
import hmac
import http.cookies
import logging
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Final

import uvicorn

from lakeless.config import HttpSettings
from lakeless.errors import ConfigError, LakelessError
from lakeless.lifecycle import Stopper, stop_on_signals

__all__ = ["HttpServer", "TokenGuard", "is_loopback"]

_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
#: Paths a token never guards (liveness probes).
_OPEN_PATHS: Final = frozenset({"/health", "/healthz"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    return host in _LOOPBACK or host.startswith("127.")


class TokenGuard:
    """ASGI middleware: requests (but for ``/health``) need the token.

    Accepted: ``Authorization: Bearer <token>``, the `COOKIE` cookie, or (for a browser's first
    page load) a ``token`` query parameter, which is then set as that cookie.

    Example:
        >>> TokenGuard(None, "s3cret").accepts([(b"authorization", b"Bearer s3cret")])
        True
        >>> TokenGuard(None, "s3cret").accepts([(b"cookie", b"a=1; lakeless_token=s3cret")])
        True
    """

    COOKIE: Final = "lakeless_token"

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()
        self._expected = b"Bearer " + self._token

    def accepts(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether ``headers`` carry the token (header or cookie)."""
        given = next((v for k, v in headers if k.lower() == b"authorization"), b"")
        if hmac.compare_digest(given, self._expected):
            return True
        for key, value in headers:
            if key.lower() == b"cookie":
                cookies = http.cookies.SimpleCookie(value.decode("latin-1"))
                if (morsel := cookies.get(self.COOKIE)) is not None and hmac.compare_digest(
                    morsel.value.encode(), self._token
                ):
                    return True
        return False

    def _query_token(self, scope: Scope) -> bool:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(hmac.compare_digest(v.encode(), self._token) for v in query.get("token", []))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.accepts(list(scope.get("headers", []))):
            await self.app(scope, receive, send)
            return
        if self._query_token(scope):
            cookie = (
                f"{self.COOKIE}={self._token.decode()}; HttpOnly; SameSite=Strict; Path=/"
            ).encode()

            async def send_with_cookie(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"set-cookie", cookie)],
                    }
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b'{"detail":"a bearer token is required"}'}
        )


def guarded(app: Any, host: str, access: HttpSettings | None, name: str) -> Any:
    """``app`` behind a `TokenGuard` when the access settings (and the interface) ask for one.

    Raises:
        ConfigError: a token is required (not loopback, or ``require_token``) but none is set.
    """
    access = access or HttpSettings()
    token = access.bearer()
    if token is None:
        if access.require_token or not is_loopback(host):
            raise ConfigError(
                f"{name} on {host} needs a bearer token: set LAKELESS_HTTP__TOKEN or "
                "LAKELESS_HTTP__TOKEN_FILE (or listen on 127.0.0.1)"
            )
        return app
    return TokenGuard(app, token)


logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by a `Stopper` instead of its own signal handling."""

    def __init__(
        self,
        config: uvicorn.Config,
        stopper: Stopper,
        on_exit: Callable[[], None] | None,
        signals: bool,
    ) -> None:
        super().__init__(config)
        self.stopper = stopper
        self.on_exit = on_exit
        self.signals = signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.signals:
            yield
            return
        with stop_on_signals(self.stopper):
            yield

    async def on_tick(self, counter: int) -> bool:
        if not self.should_exit and self.stopper.done:  # checked every 0.1 s by uvicorn
            self.should_exit = True
        if self.should_exit and self.on_exit is not None:
            self.on_exit()  # e.g. end event streams, so the graceful shutdown does not wait
        return await super().on_tick(counter)


class HttpServer:
    """Serves ``app`` on ``host:port`` until its `stopper` stops.

    Args:
        app: the ASGI app.
        host: interface to listen on.
        port: TCP port (0: any free one; see `port` once started).
        name: what log lines and errors call it.
        access: who may call it (`lakeless.config.HttpSettings`; default: loopback, no token).
        stopper: stops it (default: a new one, stopped by `stop`).
        on_exit: called (repeatedly) once shutting down.
        graceful: seconds in-flight requests get to finish.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "http",
        access: HttpSettings | None = None,
        stopper: Stopper | None = None,
        on_exit: Callable[[], None] | None = None,
        graceful: float = 10.0,
    ) -> None:
        self.app = app
        app = guarded(app, host, access, name)
        self.host = host
        self.name = name
        self.stopper = stopper or Stopper()
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # the library never configures logging; the CLI did
            access_log=False,
            lifespan="auto",  # e.g. prometheus_client's app has no lifespan
            timeout_graceful_shutdown=int(graceful),
        )
        self._on_exit = on_exit
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when asked for port 0)."""
        for server in getattr(self._server, "servers", None) or []:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._config.port)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def run(self) -> str:
        """Serve in the foreground (SIGTERM/SIGINT stop it); return why it stopped.

        Raises:
            LakelessError: it could not listen (e.g. the port is taken).
        """
        server = self._server = _Server(self._config, self.stopper, self._on_exit, signals=True)
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when it cannot bind
            raise LakelessError(
                f"{self.name}: cannot listen on {self.host}:{self._config.port} (see the log)"
            ) from exc
        if not server.started:
            raise LakelessError(f"{self.name} did not start (see the log)")
        return self.stopper.reason or "stopped"

    def start(self, timeout: float = 30.0) -> HttpServer:
        """Serve on a daemon thread; return once it listens.

        Raises:
            LakelessError: it did not start within ``timeout`` seconds (e.g. the port is taken).
        """
        server = self._server = _Server(self._config, self.stopper, self._on_exit, signals=False)
        self._thread = threading.Thread(target=server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LakelessError(f"{self.name} did not start on {self.host}:{self._config.port}")
            time.sleep(0.02)
        logger.info("%s on %s", self.name, self.url)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop serving and wait for the thread."""
        self.stopper.request_stop("stopped")
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
