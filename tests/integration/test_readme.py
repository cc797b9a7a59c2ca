"""The README's walkthrough ("The first hour, on the command line"), run as it stands, in order.

Each command line of the section's ``bash`` block runs in one shell-like environment (an
``export`` line sets variables for the lines after it) on a fresh stack of its own: the block's
ports and data dir are swapped for free ones in a temporary folder, ``lakeless`` for this
interpreter's ``python -m lakeless``. A ``# -> TEXT`` comment says what the output contains; one
that starts with ``error:`` means the command must fail (with that message).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakeless.stack import free_port, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## The first hour, on the command line"


@dataclass(frozen=True)
class Step:
    line: str
    expect: str | None

    @property
    def fails(self) -> bool:
        return self.expect is not None and self.expect.startswith("error:")


def walkthrough() -> list[Step]:
    text = README.read_text()
    section = text[text.index(SECTION) :]
    block = section[section.index("```bash\n") + len("```bash\n") :]
    block = block[: block.index("```")]
    steps = []
    for raw in block.splitlines():
        command, _, expect = raw.partition("# ->")
        if command.strip():
            steps.append(Step(command.strip(), expect.strip() or None))
    return steps


def test_the_walkthrough_parses() -> None:
    steps = walkthrough()
    assert steps[0].line.startswith("lakeless stack up") and "stack down" in steps[-1].line
    assert any(s.fails for s in steps) and sum(s.expect is not None for s in steps) >= 6


def test_the_readme_walkthrough_gives_what_the_readme_says(tmp_path: Path) -> None:
    steps = walkthrough()
    kafka, mqtt = free_ports(1), free_port()
    controller = free_ports(1)
    swaps = {"19092": str(kafka), "19095": str(controller), "11883": str(mqtt)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKELESS_")}
    env["COLUMNS"] = "200"
    try:
        for step in steps:
            line = re.sub(r"\b(19092|19095|11883)\b", lambda m: swaps[m.group(1)], step.line)
            words = shlex.split(line)
            if words[0] == "export":
                env.update(word.split("=", 1) for word in words[1:])
                continue
            assert words[0] == "lakeless", step.line
            result = subprocess.run(
                [sys.executable, "-m", "lakeless", *words[1:]],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            output = " ".join((result.stdout + result.stderr).split())
            assert "Traceback" not in output, output[-3000:]
            if step.fails:
                assert result.returncode != 0, f"{step.line} should fail: {output[-2000:]}"
                wanted = step.expect.removeprefix("error:").strip()  # type: ignore[union-attr]
            else:
                assert result.returncode == 0, f"{step.line}: {output[-3000:]}"
                wanted = step.expect or ""
            assert wanted in output, f"{step.line}: {wanted!r} not in {output[-3000:]}"
    finally:
        subprocess.run(
            [sys.executable, "-m", "lakeless", "stack", "down", "--data-dir", "./tmp-stack"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
