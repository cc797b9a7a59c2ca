"""The ``serve`` stage: the live registry model behind an HTTP API (request/response scoring).

The talk's alternative to embedding the model in the streaming app: a model server that
applications call per event or per batch. `create_app` is the FastAPI app (``POST /score``,
``POST /score/batch``, ``GET /model``, ``GET /health``); it validates events exactly as
``preprocess`` does and follows the model on the registry topic with the same
`lakeless.registry.RegistryFollower` as the scorer, so a promoted model is served from the next
request on and a refused one never replaces the current one. `run_serve` runs it until
``--count/--timeout/--until-idle`` or SIGTERM.

`HttpScorerFactory` is the other end: ``lakeless score --via URL`` scores every batch with one
request to such a server instead of embedding ONNX Runtime, so the two designs can be compared
on the same stream (`lakeless.serve._wire` is the binary batch format they use).

Example:
    >>> ServeSettings(model="car-ae").port
    8000
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.serve._settings import ServeSettings

if TYPE_CHECKING:
    from lakeless.serve._app import ServeStats, create_app
    from lakeless.serve._client import HttpScorer, HttpScorerFactory, ModelServerError
    from lakeless.serve._models import LiveModel, RegistryWatcher, Served
    from lakeless.serve._server import ServeError, run_serve

__all__ = [
    "HttpScorer",
    "HttpScorerFactory",
    "LiveModel",
    "ModelServerError",
    "RegistryWatcher",
    "ServeError",
    "ServeSettings",
    "ServeStats",
    "Served",
    "create_app",
    "run_serve",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "._app": ["ServeStats", "create_app"],
        "._client": ["HttpScorer", "HttpScorerFactory", "ModelServerError"],
        "._models": ["LiveModel", "RegistryWatcher", "Served"],
        "._server": ["ServeError", "run_serve"],
    },
)
