"""Supervised stage processes: started, restarted when they crash, stopped without leftovers."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class StageProcess:
    """One stage run as ``python -m lakeless <args>``, restarted when it exits unexpectedly.

    Attributes:
        name: short name in reports (``bridge``, ``score``, ...).
        args: the ``lakeless`` sub-command and its options.
        restart: restart it when it exits (a one-shot job sets this to ``False``).
        restarts: how often it was restarted.
        crashes: exit codes of unexpected exits.
    """

    name: str
    args: list[str]
    restart: bool = True
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    crashes: list[int] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """Starts stages, restarts crashed ones (with a back-off), and stops them all.

    Each stage gets its own process group, so stopping it also stops anything it started
    (``score --processes N``), and its output goes to ``<log_dir>/<name>.log``.
    """

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, **(env or {})}
        self.stages: dict[str, StageProcess] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, stage: StageProcess) -> StageProcess:
        """Start ``stage`` (its log file is appended to across restarts)."""
        self.stages[stage.name] = stage
        with (self.log_dir / f"{stage.name}.log").open("ab") as log:
            stage.process = subprocess.Popen(
                [sys.executable, "-m", "lakeless", *stage.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **stage.env},
                start_new_session=True,
            )
        stage.started_at = time.monotonic()
        logger.info("started %s (pid %d)", stage.name, stage.process.pid)
        return stage

    def check(self) -> list[str]:
        """Restart crashed stages; returns a line per event for the report."""
        events = []
        now = time.monotonic()
        for stage in self.stages.values():
            process = stage.process
            if not stage.restart or process is None or process.poll() is None:
                continue
            if stage.restart_at is None:
                stage.crashes.append(process.returncode)
                # Back off when it keeps crashing right after starting, so it does not spin.
                quick = now - stage.started_at < 10
                delay = min(30.0, 2.0 ** min(len(stage.crashes), 5)) if quick else 0.0
                stage.restart_at = now + delay
                events.append(
                    f"{stage.name} exited with code {process.returncode}; "
                    f"restarting in {delay:.0f}s"
                )
                logger.warning(events[-1])
            if now >= stage.restart_at:
                stage.restart_at = None
                stage.restarts += 1
                self.start(stage)
        return events

    def finished(self, name: str) -> int | None:
        """Exit code of a stage that has finished, else ``None``."""
        stage = self.stages.get(name)
        if stage is None or stage.process is None:
            return None
        return stage.process.poll()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every stage's process group, wait, then SIGKILL what is left."""
        running = [s for s in self.stages.values() if s.process and s.process.poll() is None]
        for stage in running:
            assert stage.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stage.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for stage in running:
            assert stage.process is not None
            try:
                stage.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0fs; killing it", stage.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stage.process.pid, signal.SIGKILL)
            stage.process.wait()
