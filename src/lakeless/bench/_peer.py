"""Peers measured in a virtualenv of their own (tensorflow-io, Quix Streams).

Each virtualenv is built once and cached; the peer then runs as a subprocess that answers with
one JSON line (`run_peer_script`; the Kafka Streams JVM of `lakeless.bench._jvm` answers the
same way, `run_json_command`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
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


def run_json_command(
    name: str,
    command: Sequence[str],
    *,
    timeout: float,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any] | BenchResult:
    """Run ``command``, ``input_text`` on its stdin; its last stdout line (JSON) is the answer.

    Returns:
        The answer, or a failed `BenchResult` named ``name`` saying why (timed out, or its exit
        status and the end of its stderr).
    """
    try:
        done = subprocess.run(
            list(command),
            input=input_text,
            stdin=subprocess.DEVNULL if input_text is None else None,
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


def run_peer_script(
    name: str,
    python: Path,
    script: Path,
    args: dict[str, Any],
    *,
    timeout: float,
    keep: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    **extra: Any,
) -> BenchResult:
    """Run a peer's ``script`` with ``args`` as JSON on stdin: the result named ``name``.

    The script answers with one JSON line ``{"events", "seconds", "complete", ...}`` (its last
    line on stdout). It sees this process' environment plus ``env``, without ``PYTHONPATH``
    and with no user site directory: only its virtualenv's packages, none of lakeless'.

    Returns:
        ``events`` in ``seconds`` with ``complete``, the answer's ``keep`` keys and ``extra``
        in ``extra``; or a failed result saying why (timed out, the exit status and the end
        of stderr).
    """
    isolated = {**os.environ, "PYTHONNOUSERSITE": "1", **(env or {})}
    isolated.pop("PYTHONPATH", None)
    command = [str(python), str(script)]
    out = run_json_command(
        name, command, timeout=timeout, input_text=json.dumps(args), env=isolated, cwd=cwd
    )
    if isinstance(out, BenchResult):
        return out
    kept = {key: out.get(key) for key in keep}
    return BenchResult(
        name,
        int(out["events"]),
        float(out["seconds"]),
        {"complete": bool(out["complete"]), **kept, **extra},
    )
