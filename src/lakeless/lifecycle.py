"""How long-running loops stop: by count, timeout, idleness, or SIGTERM/SIGINT.

A loop stops after ``count`` items, after ``timeout`` seconds, after ``until_idle`` seconds
without input, or when a signal arrives.

Every stage's ``run(...)`` takes a `RunLimits` and asks a `Stopper` between batches, so each one
can be tested, benchmarked and shut down cleanly the same way.

Example:
    >>> stopper = Stopper(RunLimits(count=3))
    >>> stopper.add(2); stopper.done
    False
    >>> stopper.add(1); stopper.done
    True
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType


@dataclass(frozen=True)
class RunLimits:
    """When a loop stops by itself; ``None`` means no such limit.

    Attributes:
        count: stop after this many items were processed.
        timeout: stop after this many seconds.
        until_idle: stop once no input arrived for this many seconds.
    """

    count: int | None = None
    timeout: float | None = None
    until_idle: float | None = None


class Stopper:
    """Tracks `RunLimits` plus an external stop request (thread-safe `request_stop`)."""

    def __init__(self, limits: RunLimits | None = None) -> None:
        self.limits = limits or RunLimits()
        self.started = time.monotonic()
        self.last_input = self.started
        self.processed = 0
        self.reason: str | None = None
        self._stop = threading.Event()

    def add(self, items: int) -> None:
        """Record ``items`` processed (input seen now when ``items > 0``)."""
        if items > 0:
            self.processed += items
            self.last_input = time.monotonic()

    def saw_input(self) -> None:
        """Record that input arrived, for a loop whose output lags its input."""
        self.last_input = time.monotonic()

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to stop after its current batch."""
        if self.reason is None:
            self.reason = reason
        self._stop.set()

    @property
    def remaining(self) -> int | None:
        """Items still allowed by ``count`` (``None``: unlimited)."""
        if self.limits.count is None:
            return None
        return max(0, self.limits.count - self.processed)

    @property
    def done(self) -> bool:
        """Whether the loop should stop now; `reason` says why."""
        if self._stop.is_set():
            return True
        now = time.monotonic()
        limits = self.limits
        if limits.count is not None and self.processed >= limits.count:
            self.reason = f"processed {self.processed} (count)"
        elif limits.timeout is not None and now - self.started >= limits.timeout:
            self.reason = f"timeout after {limits.timeout:g}s"
        elif limits.until_idle is not None and now - self.last_input >= limits.until_idle:
            self.reason = f"idle for {limits.until_idle:g}s"
        else:
            return False
        self._stop.set()
        return True

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on a stop request; returns `done`."""
        self._stop.wait(seconds)
        return self.done


@contextlib.contextmanager
def stop_on_signals(stopper: Stopper) -> Iterator[Stopper]:
    """Within the block, SIGTERM and SIGINT ask ``stopper`` to stop instead of killing.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stopper
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        stopper.request_stop(f"received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopper
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
