"""The one process helper: a child's whole group is stopped, stubborn ones are killed."""

from __future__ import annotations

import sys
from pathlib import Path

from lakeless._process import alive, spawn, stop_groups, stop_pid

#: A parent that ignores SIGTERM and starts a child that sleeps; both print their pid, then
#: "ready" (the test waits for that line, not for time).
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
print("ready", flush=True)
time.sleep(600)
"""


def _wait_for_ready(log: Path) -> int:
    while "ready" not in log.read_text():
        pass  # the child writes it within a second; pytest's timeout bounds a broken one
    return int(log.read_text().split()[0])


def test_stop_groups_kills_a_child_that_ignores_sigterm_and_its_own_children(
    tmp_path: Path,
) -> None:
    log = tmp_path / "out.log"
    parent = spawn([sys.executable, "-c", STUBBORN], log=log)
    grandchild = _wait_for_ready(log)
    assert alive(parent.pid) and alive(grandchild)
    stop_groups([parent], timeout=0.5, what="stubborn")
    assert parent.returncode is not None
    assert not alive(grandchild)  # the signal reached the whole group


def test_stop_pid_and_alive_for_a_pid_file_server(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    server = spawn(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"], log=log
    )
    while "ready" not in log.read_text():
        pass
    stop_pid(server.pid, timeout=10, what="server")
    assert not alive(server.pid)  # reaped, not a zombie
    assert not alive(2**22 + 12345)  # no such process
