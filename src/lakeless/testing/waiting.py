"""Waiting in tests on a condition (an offset reached, a probe answering), never a fixed sleep.

Example:
    >>> from itertools import count
    >>> calls = count()
    >>> wait_for(lambda: next(calls) >= 2, 5, "the third call", interval=0.01)
    True
    >>> wait_for(lambda: {"status": "ok"}, 5)  # the condition's true value is returned
    {'status': 'ok'}
    >>> wait_for(lambda: False, 0.05, "never", lambda: "why: nothing", interval=0.01)
    Traceback (most recent call last):
    AssertionError: timed out after 0s waiting for never
    why: nothing
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 60.0,
    what: str | None = None,
    diagnose: Callable[[], str] | None = None,
    *,
    interval: float = 0.1,
) -> T:
    """Poll ``condition`` every ``interval`` seconds until it returns a true value; return it.

    Raises:
        AssertionError: still false after ``timeout`` seconds; names ``what`` (by default the
            condition's source line) and adds what ``diagnose`` tells (e.g. the last log lines of
            the processes involved).
    """
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() >= deadline:
            detail = f"\n{diagnose()}" if diagnose is not None else ""
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what or _describe(condition)}{detail}"
            )
        time.sleep(interval)
    return result


def _describe(condition: Callable[[], object]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return getattr(condition, "__qualname__", repr(condition))
