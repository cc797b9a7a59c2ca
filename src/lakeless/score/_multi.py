"""``--processes N``: N members of the scorer's consumer group on one machine.

Each worker is a fresh interpreter (``spawn``) with its own consumer, producer and model
session, so N workers use N cores without sharing a GIL or an ONNX Runtime thread pool. The
parent only supervises: SIGTERM/SIGINT to the parent is forwarded to every worker (each
finishes its batch and commits), a worker that fails stops the others, and the workers'
`ScoreStats` are merged. Limits apply to every worker (``count`` per worker).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Callable
from typing import Any

from lakeless.config import Settings
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.model.scoring import ScorerFactory
from lakeless.pipeline import Pipeline
from lakeless.score._stage import ScoreError, ScoreStage
from lakeless.score._stats import ScoreStats

__all__ = ["run_processes"]

logger = logging.getLogger(__name__)


def _worker(
    settings: Settings,
    pipeline: Pipeline | None,
    limits: RunLimits,
    index: int,
    results: Any,
    setup: Callable[[], None] | None,
    factory: ScorerFactory | None,
) -> None:
    if setup is not None:
        setup()
    try:
        stats = ScoreStage(settings, pipeline, scorer_factory=factory, index=index).run(limits)
    except BaseException as exc:
        results.put((index, None, f"{type(exc).__name__}: {exc}"))
        raise
    results.put((index, stats, None))


def run_processes(
    settings: Settings,
    pipeline: Pipeline | None = None,
    limits: RunLimits | None = None,
    processes: int = 2,
    *,
    scorer_factory: ScorerFactory | None = None,
    setup: Callable[[], None] | None = None,
) -> ScoreStats:
    """Run ``processes`` scorer workers in the same consumer group; merge their stats.

    Args:
        settings: connections and the stage's settings (every worker gets the same).
        pipeline: the pipeline (default: the built-in car fleet).
        limits: each worker's limits (default: the settings').
        processes: number of workers.
        scorer_factory: picklable; default `OnnxScorerFactory`.
        setup: picklable callable each worker runs first (e.g. logging configuration).

    Raises:
        ScoreError: a worker failed (the others are stopped first).
    """
    context = mp.get_context("spawn")
    results: Any = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(
                settings,
                pipeline,
                limits or settings.score.limits(),
                i,
                results,
                setup,
                scorer_factory,
            ),
            name=f"score-{i}",
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    total = ScoreStats()
    failures: list[str] = []
    done: set[int] = set()
    stopper = Stopper()
    forwarded = False
    with stop_on_signals(stopper):
        while len(done) < processes:
            try:
                index, stats, error = results.get(timeout=0.2)
            except queue.Empty:
                if all(not w.is_alive() for w in workers):
                    # Exited without a report (killed): drain what is left, then give up.
                    try:
                        index, stats, error = results.get(timeout=1.0)
                    except queue.Empty:
                        failures += [
                            f"worker {i} exited with {w.exitcode}"
                            for i, w in enumerate(workers)
                            if i not in done
                        ]
                        break
                else:
                    if stopper.done and not forwarded:
                        forwarded = True
                        _signal_all(workers)
                    continue
            done.add(index)
            if error is not None:
                failures.append(f"worker {index}: {error}")
                if not forwarded:
                    forwarded = True
                    _signal_all(workers)
            else:
                total.merge(stats)
    for worker in workers:
        worker.join(30)
    if failures:
        raise ScoreError("; ".join(failures))
    if forwarded and stopper.reason:
        total.stopped_by = stopper.reason
    return total


def _signal_all(workers: list[Any]) -> None:
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
