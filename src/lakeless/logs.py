"""Log formatting: one JSON object per line with ``--log-format json``.

The library never configures logging; the CLI (and the worker processes it spawns, which start
with a bare interpreter) calls `configure_logging`.

Example:
    >>> import logging
    >>> record = logging.LogRecord("x", logging.INFO, "f", 1, "hello %s", ("you",), None)
    >>> JsonFormatter().format(record)[-35:]
    '"logger":"x","message":"hello you"}'
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

import msgspec

__all__ = ["JsonFormatter", "configure_logging", "install_handler"]

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "process", "logger", "message"}``; ``extra={"data": {...}}`` merges."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": record.processName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            out.update(data)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(out).decode()


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Replace the root handlers: plain text or JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(processName)s %(name)s: %(message)s"))
    install_handler(handler, level)


def install_handler(handler: logging.Handler, level: str = "INFO") -> None:
    """Make ``handler`` the root logger's only handler, and ``level`` its level."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
