"""Peers measured in a virtualenv of their own (tensorflow-io, Quix Streams).

Each virtualenv is built once and cached; the peer then runs as a subprocess that answers with
one JSON line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lakeless.bench._result import BenchResult
from lakeless.errors import LakelessError

logger = logging.getLogger(__name__)

Runner = Callable[[Sequence[str], float, str], None]


def cached_venv(env_var: str, name: str) -> Path:
    """``$<env_var>``, else ``$XDG_CACHE_HOME/lakeless/<name>`` (``~/.cache`` by default)."""
    if configured := os.environ.get(env_var):
        return Path(configured).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lakeless" / name


def run_command(
    command: Sequence[str], timeout: float, what: str, *, error: type[LakelessError]
) -> None:
    """Run a build step; raise ``error`` saying what failed and the end of its output."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} took more than {timeout:.0f}s") from exc
    except OSError as exc:
        raise error(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise error(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def ensure_venv(
    path: Path,
    requirements: Sequence[str],
    *,
    marker: str,
    base_python: Callable[[], str],
    timeout: float,
    run: Runner,
    check_import: str | None = None,
) -> Path:
    """The Python of the virtualenv at ``path``, built there first unless already complete.

    A marker file naming ``requirements`` is written last, so an interrupted build, or one for
    other requirements, counts as missing and is redone from scratch. ``base_python`` gives the
    interpreter to build it with, asked only when building.
    """
    python = path / "bin" / "python"
    marker_file = path / marker
    wanted = " ".join(requirements)
    if python.exists() and marker_file.is_file() and marker_file.read_text().strip() == wanted:
        return python
    logger.info("building the virtualenv %s (%s)", path, wanted)
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    run([base_python(), "-m", "venv", str(path)], 120, "creating the virtualenv")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    run([*pip, *requirements], timeout, f"pip install {wanted}")
    if check_import:
        run([str(python), "-c", f"import {check_import}"], 300, f"importing {check_import}")
    marker_file.write_text(wanted + "\n")
    return python


def run_peer_script(
    name: str,
    python: Path,
    script: Path,
    args: dict[str, Any],
    *,
    timeout: float,
    env: dict[str, str],
    cwd: Path | None = None,
) -> dict[str, Any] | BenchResult:
    """Run ``script`` with ``args`` as JSON on stdin; its last stdout line (JSON) is the answer.

    Returns:
        The answer, or a failed `BenchResult` named ``name`` saying why.
    """
    try:
        done = subprocess.run(
            [str(python), str(script)],
            input=json.dumps(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return BenchResult(name, 0, 0.0, {"failed": True, "reason": "timed out"})
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        return BenchResult(
            name, 0, 0.0, {"failed": True, "reason": f"exit {done.returncode}: {tail}"}
        )
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer
