"""Child processes, one way: each in its own process group; stopped by SIGTERM, then SIGKILL.

The stack's servers, the demo's stages and the dashboard's training jobs all start children
that may start children of their own (``score --processes N``); a process group lets one
signal reach them all, and a child that ignores SIGTERM for ``timeout`` seconds is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["alive", "spawn", "stop_groups", "stop_pid"]

logger = logging.getLogger(__name__)


def spawn(
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """Start ``argv`` in a new session and process group (stdout and stderr to ``log``).

    Args:
        argv: the command.
        log: file that receives both output streams (appended to); ``None``: as ``popen`` says.
        env: the environment (default: this process').
        **popen: more `subprocess.Popen` arguments (e.g. ``stdout=subprocess.PIPE``).

    Raises:
        OSError: the command cannot be started.
    """
    handle: IO[bytes] | None = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        popen = {"stdout": handle, "stderr": subprocess.STDOUT, **popen}
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, env=env, start_new_session=True, **popen
        )
    finally:
        if handle is not None:
            handle.close()  # the child has its own copy


def stop_groups(
    processes: Sequence[subprocess.Popen[Any]], timeout: float = 20.0, what: str = "process"
) -> None:
    """SIGTERM the groups of ``processes``, wait up to ``timeout`` s, then SIGKILL what is left."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s %d ignored SIGTERM for %.0fs; killing it", what, process.pid, timeout
            )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # also its children still in the group
        process.wait()
        _wait_group_gone(process.pid)


def _wait_group_gone(pgid: int, timeout: float = 5.0) -> None:
    """Wait until no process of group ``pgid`` runs (a SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (an exited child of ours is reaped, and a zombie is not alive)."""
    try:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # An exited process that is not our child stays a zombie until its parent reaps it.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def stop_pid(pid: int, timeout: float = 30.0, what: str = "process") -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL it (for pid-file servers)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        logger.warning("%s (pid %d) ignored SIGTERM for %.0fs; killing it", what, pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
