"""Background processes with pid files: start detached, check, stop with SIGTERM then SIGKILL."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from pathlib import Path

from lakeless._process import alive, spawn, stop_pid
from lakeless.errors import StackError

logger = logging.getLogger(__name__)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive TCP ports nothing listens on right now.

    For a cluster whose nodes listen on ``port``, ``port + 1``, ...: pick a free port, check
    the ones after it, try again elsewhere when one is taken.

    Raises:
        StackError: no such range was found.
    """
    for _ in range(100):
        base = free_port(host)
        if base + count <= 65535 and all(port_is_free(base + i, host) for i in range(count)):
            return base
    raise StackError(f"found no {count} consecutive free ports on {host}")


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Daemon:
    """A process started in its own session, tracked by a pid file.

    Args:
        name: short name used in messages (``kafka``, ``mqtt``).
        pid_file: where the pid is kept between commands.
        log_file: receives the process' stdout and stderr.
    """

    def __init__(self, name: str, pid_file: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file

    def pid(self) -> int | None:
        """The pid if the process is alive, else ``None`` (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` detached from this process' session; stdout/stderr go to the log."""
        logger.debug("starting %s: %s", self.name, " ".join(argv))
        try:
            process = spawn(argv, log=self.log_file, env=env)
        except OSError as exc:
            raise StackError(f"cannot start {self.name} ({argv[0]}): {exc}") from exc
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def signal_stop(self) -> None:
        """Send SIGTERM without waiting (`stop` waits); nothing if not running."""
        if (pid := self.pid()) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns whether it was running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_pid(pid, timeout, self.name)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
