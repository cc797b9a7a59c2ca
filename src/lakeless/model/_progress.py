"""A rich progress bar for a fitting model (the CLI's ``lakeless train`` uses it).

Example:
    >>> from lakeless.model import Autoencoder
    >>> with rich_progress(transient=True) as progress:  # doctest: +SKIP
    ...     Autoencoder().fit(x, labels, progress=progress)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lakeless.model._base import ProgressCallback, TrainProgress


@contextmanager
def rich_progress(**kwargs: Any) -> Iterator[ProgressCallback]:
    """Yield a `ProgressCallback` that draws one rich progress bar per epoch.

    On a console that is not a terminal (a log file, CI), one line per finished epoch is
    printed instead, with its loss, as Keras users expect.

    Args:
        **kwargs: passed to `rich.progress.Progress` (e.g. ``console=``, ``transient=``).
    """
    from rich.console import Console

    console = kwargs.get("console") or Console(stderr=True)
    if not console.is_terminal:

        def line(report: TrainProgress) -> None:
            if report.done:
                val = "" if report.val_loss is None else f", val_loss {report.val_loss:.4g}"
                console.print(f"epoch {report.epoch}/{report.epochs}: loss {report.loss:.4g}{val}")

        yield line
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4g} {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, **kwargs) as bar:
        tasks: dict[int, Any] = {}

        def update(report: TrainProgress) -> None:
            task = tasks.get(report.epoch)
            if task is None:
                task = tasks[report.epoch] = bar.add_task(
                    "fit",
                    total=report.steps,
                    epoch=f"{report.epoch}/{report.epochs}",
                    loss=report.loss,
                    val="",
                )
            val = "" if report.val_loss is None else f"val {report.val_loss:.4g}"
            bar.update(task, completed=report.step, loss=report.loss, val=val)

        yield update
