"""`TrainJobs`: the dashboard's "train on the last N minutes" button, as a subprocess.

A job runs ``python -m lakeless train --pipeline P --name MODEL --last Nm --promote --json`` in a
child process: TensorFlow
loads there and never in the server (the dashboard stays light and responsive, and a crash in
training cannot take the page down). The child gets the dashboard's own settings through the
environment (``LAKELESS_KAFKA``, ``LAKELESS_TOPICS``, ``LAKELESS_MQTT`` as JSON,
``LAKELESS_DATA_DIR``), so it trains against the cluster and topics the page shows, whatever
the dashboard's own environment said. Other ``LAKELESS_TRAIN_*`` variables pass through
(``LAKELESS_TRAIN_EPOCHS=2`` for a quick run).

One job runs at a time; the last ``keep`` jobs are remembered with their status, the last
lines the trainer printed, and its ``--json`` summary when it succeeded.

Example:
    >>> from lakeless.config import Settings
    >>> env = settings_env(Settings(data_dir="/tmp/lk"))
    >>> env["LAKELESS_DATA_DIR"], sorted(env)[:2]
    ('/tmp/lk', ['LAKELESS_DATA_DIR', 'LAKELESS_KAFKA'])
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lakeless._process import spawn, stop_groups
from lakeless.config import Settings
from lakeless.errors import LakelessError

__all__ = ["JobBusyError", "TrainJob", "TrainJobs", "settings_env"]

logger = logging.getLogger(__name__)

#: Lines of the trainer's output kept per job.
_TAIL_LINES: Final = 40
#: Environment prefixes the child must take from `settings_env`, not from the dashboard's env.
_OWNED: Final = ("LAKELESS_KAFKA", "LAKELESS_TOPICS", "LAKELESS_MQTT", "LAKELESS_DATA_DIR")

JobStatus = Literal["running", "succeeded", "failed", "cancelled"]


class JobBusyError(LakelessError):
    """A training job is running already."""


@dataclass
class TrainJob:
    """One training run started from the page.

    Attributes:
        id: short random id.
        minutes: the window, in minutes before the start.
        pipeline: the pipeline whose clean topic it trains on.
        model: the registry name it trains.
        command: the command line of the child.
        status: ``running``, ``succeeded``, ``failed`` or ``cancelled``.
        started_at: wall time (s since the epoch).
        finished_at: wall time it ended.
        returncode: the child's exit status.
        output: the last lines it printed (both streams, `_TAIL_LINES` of them).
        result: its ``--json`` summary (name, version, metrics, report paths ...).
        error: a one-line reason when it failed.
    """

    id: str
    minutes: float
    pipeline: str
    model: str
    command: list[str]
    status: JobStatus = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    returncode: int | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the output as a list of lines)."""
        end = self.finished_at or time.time()
        return {
            "id": self.id,
            "minutes": self.minutes,
            "pipeline": self.pipeline,
            "model": self.model,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_s": round(end - self.started_at, 1),
            "returncode": self.returncode,
            "output": list(self.output),
            "result": self.result,
            "error": self.error,
            "command": self.command,
        }


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make ``lakeless`` in a child process use ``settings``.

    Secrets are written in clear (the child needs them); the variables go to the child only.
    """
    kafka = settings.kafka.model_dump(mode="json")
    if settings.kafka.sasl_password is not None:
        kafka["sasl_password"] = settings.kafka.sasl_password.get_secret_value()
    mqtt = settings.mqtt.model_dump(mode="json")
    if settings.mqtt.password is not None:
        mqtt["password"] = settings.mqtt.password.get_secret_value()
    return {
        "LAKELESS_KAFKA": json.dumps(kafka),
        "LAKELESS_TOPICS": json.dumps(settings.topics.model_dump(mode="json")),
        "LAKELESS_MQTT": json.dumps(mqtt),
        "LAKELESS_DATA_DIR": str(settings.data_dir),
    }


class TrainJobs:
    """Starts and tracks training subprocesses.

    Args:
        settings: what the child trains against (see `settings_env`).
        extra_args: more ``lakeless train`` arguments (e.g. ``["--epochs", "2"]``).
        python: the interpreter (this one by default).
        keep: finished jobs remembered.
        on_finish: called with each job when it ends (the collector refreshes the registry).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        keep: int = 20,
        on_finish: Callable[[TrainJob], None] | None = None,
    ) -> None:
        self.settings = settings
        self.extra_args = list(extra_args)
        self.python = python
        self.keep = keep
        self.on_finish = on_finish
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, TrainJob] = OrderedDict()
        self._processes: dict[str, subprocess.Popen[str]] = {}

    def command(self, minutes: float, pipeline: str, model: str) -> list[str]:
        """The child's command line for a window of ``minutes`` of ``pipeline``."""
        window = f"{minutes:g}m" if minutes >= 1 else f"{round(minutes * 60)}s"
        return [
            self.python,
            "-m",
            "lakeless",
            "train",
            "--pipeline",
            pipeline,
            "--name",
            model,
            "--last",
            window,
            "--promote",
            "--json",
            *self.extra_args,
        ]

    def start(self, minutes: float, pipeline: str, model: str) -> TrainJob:
        """Start a job training ``model`` on the last ``minutes`` of ``pipeline``.

        Raises:
            JobBusyError: a job is running.
            LakelessError: the child could not be started.
        """
        with self._lock:
            running = [j for j in self._jobs.values() if j.status == "running"]
            if running:
                raise JobBusyError(f"training job {running[0].id} is still running")
            job = TrainJob(
                id=uuid.uuid4().hex[:8],
                minutes=minutes,
                pipeline=pipeline,
                model=model,
                command=self.command(minutes, pipeline, model),
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith(_OWNED)}
            env |= settings_env(self.settings)
            env.setdefault("PYTHONUNBUFFERED", "1")
            try:
                process = spawn(
                    job.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            except OSError as exc:
                raise LakelessError(f"cannot start training: {exc}") from exc
            self._jobs[job.id] = job
            self._processes[job.id] = process
            while len(self._jobs) > self.keep:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].status == "running":
                    break
                del self._jobs[oldest]
        logger.info("training job %s: %s", job.id, " ".join(job.command[1:]))
        threading.Thread(
            target=self._watch, args=(job, process), name=f"train-{job.id}", daemon=True
        ).start()
        return job

    def get(self, job_id: str) -> TrainJob | None:
        """A job by id."""
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self) -> TrainJob | None:
        """The most recently started job."""
        with self._lock:
            return next(reversed(self._jobs.values()), None)

    def jobs(self) -> list[TrainJob]:
        """Every remembered job, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def cancel_all(self, timeout: float = 10.0) -> None:
        """Stop running children and theirs (SIGTERM to the group, SIGKILL after ``timeout``)."""
        with self._lock:
            processes = [(i, p) for i, p in self._processes.items() if p.poll() is None]
            for job_id, _process in processes:
                self._jobs[job_id].status = "cancelled"
        if processes:
            logger.info("stopping training jobs %s", ", ".join(i for i, _ in processes))
            stop_groups([p for _, p in processes], timeout, what="training job")

    def _watch(self, job: TrainJob, process: subprocess.Popen[str]) -> None:
        stdout: list[str] = []

        def read_stdout() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                stdout.append(line)

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        assert process.stderr is not None
        for line in process.stderr:
            text = line.rstrip()
            if text:
                with self._lock:
                    job.output.append(text)
        code = process.wait()
        reader.join(10)
        result = _parse_summary("".join(stdout))
        with self._lock:
            self._processes.pop(job.id, None)
            job.returncode = code
            job.finished_at = time.time()
            job.result = result
            if job.status == "cancelled":
                pass
            elif code == 0 and result is not None:
                job.status = "succeeded"
            else:
                job.status = "failed"
                last = job.output[-1] if job.output else ""
                job.error = f"exit status {code}" + (f": {last}" if last else "")
        logger.info(
            "training job %s %s%s",
            job.id,
            job.status,
            f" ({result.get('ref')})" if result else f" ({job.error})",
        )
        if self.on_finish is not None:
            try:
                self.on_finish(job)
            except Exception:
                logger.exception("training job %s: on_finish failed", job.id)


def _parse_summary(stdout: str) -> dict[str, Any] | None:
    """The JSON object ``lakeless train --json`` printed last (anything before it ignored)."""
    text = stdout.strip()
    if not text:
        return None
    starts = [0] if text.startswith("{") else []
    at = text.rfind("\n{")
    if at >= 0:
        starts.insert(0, at + 1)
    for start in starts:
        try:
            value = json.loads(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None
