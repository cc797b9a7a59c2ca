"""`open_store`: a `TwinStore` for a database URL (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lakeless.errors import ConfigError
from lakeless.schema import PipelineSchema
from lakeless.twin._postgres import PostgresTwinStore
from lakeless.twin._sqlite import SqliteTwinStore
from lakeless.twin._store import TwinStore

__all__ = ["open_store"]


def open_store(
    url: str,
    schema: PipelineSchema,
    pipeline: str = "car-fleet",
    *,
    read_only: bool = False,
    **options: Any,
) -> TwinStore:
    """Open (and, unless ``read_only``, create when missing) a pipeline's twin at ``url``.

    Args:
        url: ``sqlite:///relative/path``, ``sqlite:////absolute/path``,
            ``sqlite:///:memory:``, a plain file path (SQLite), or
            ``postgresql://user:password@host:port/db`` (also ``postgres://``).
        schema: the pipeline's schema.
        pipeline: the pipeline's name (its tables' prefix).
        read_only: open for reading only (no table is created, nothing written).
        **options: `TwinStore` arguments (``keep_readings``, ...).

    Raises:
        ConfigError: an unknown URL scheme.
        TwinError: the database cannot be opened or holds another layout version.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresTwinStore(url, schema, pipeline, read_only=read_only, **options)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    elif "://" in url:
        raise ConfigError(f"twin database URL must be sqlite:/// or postgresql://, got {url!r}")
    else:
        path = url
    if not path:
        raise ConfigError(f"no SQLite path in {url!r}")
    target: Path | str = path if path == ":memory:" else Path(path)
    return SqliteTwinStore(target, schema, pipeline, read_only=read_only, **options)
