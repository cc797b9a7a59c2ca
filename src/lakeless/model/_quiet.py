"""Silence what native libraries write to the process's stderr while TensorFlow loads.

TensorFlow's C++ side logs through absl before absl is initialised ("All log messages before
absl::InitializeLog() is called are written to STDERR", oneDNN and CUDA-stub notices), which
``TF_CPP_MIN_LOG_LEVEL`` does not reach. `native_stderr_silenced` points file descriptor 2 at
``/dev/null`` for the duration of a block: Python's own warnings and errors in that block are
lost too, so it wraps only imports and exports.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["native_stderr_silenced"]


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Within the block, writes to file descriptor 2 go nowhere."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to do
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
