"""Waiting in tests on a condition (an offset reached, a probe answering), never a fixed sleep.

Example:
    >>> from itertools import count
    >>> calls = count()
    >>> wait_for(lambda: next(calls) >= 2, 5, "the third call", interval=0.01)
    >>> wait_for(lambda: False, 0.05, "never", lambda: "why: nothing", interval=0.01)
    Traceback (most recent call last):
    AssertionError: timed out after 0s waiting for never
    why: nothing
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_for"]


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    diagnose: Callable[[], str] | None = None,
    *,
    interval: float = 0.1,
) -> None:
    """Poll ``condition`` every ``interval`` seconds until it is true.

    Raises:
        AssertionError: still false after ``timeout`` seconds; names ``what`` and adds what
            ``diagnose`` tells (e.g. the last log lines of the processes involved).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            detail = f"\n{diagnose()}" if diagnose is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
