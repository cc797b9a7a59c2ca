"""Supervised stage processes: started, restarted when they crash, stopped without leftovers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lakeless._process import spawn, stop_groups

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
    (``score --processes N``), and its output goes to ``<log_dir>/<name>.log``. ``connect``
    gives each process (by name) the variables that connect it to the cluster.
    """

    def __init__(
        self,
        log_dir: Path,
        env: dict[str, str] | None = None,
        connect: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.log_dir = log_dir
        # The demo decides where its processes connect: inherited connection variables go.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LAKELESS_KAFKA__", "LAKELESS_MQTT__", "LAKELESS_ENV_FILE"))
        }
        self.env = {**inherited, **(env or {})}
        self.connect = connect or (lambda _name: {})
        self.stages: dict[str, StageProcess] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, stage: StageProcess) -> StageProcess:
        """Start ``stage`` (its log file is appended to across restarts)."""
        self.stages[stage.name] = stage
        stage.process = spawn(
            [sys.executable, "-m", "lakeless", *stage.args],
            log=self.log_dir / f"{stage.name}.log",
            env={**self.env_for(stage.name), **stage.env},
        )
        stage.started_at = time.monotonic()
        logger.info("started %s (pid %d)", stage.name, stage.process.pid)
        return stage

    def env_for(self, name: str) -> dict[str, str]:
        """The environment of process ``name``: the common one and how it connects."""
        return {**self.env, **self.connect(name)}

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
        stop_groups(
            [s.process for s in self.stages.values() if s.process is not None],
            timeout,
            what="stage",
        )
