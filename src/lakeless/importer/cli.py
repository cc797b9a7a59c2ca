"""``lakeless import FILE``: recorded data into a pipeline's raw topic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("importer")
def import_command(
    settings: Settings,
    path: Annotated[Path, typer.Argument(help="A .csv or .jsonl file, optionally .gz.")],
) -> None:
    """Replay recorded data into Kafka, keeping the original event times."""
    from rich.progress import Progress

    from lakeless.importer import ImportStats, count_records, import_file
    from lakeless.importer._settings import ImportSettings
    from lakeless.pipeline import resolve_pipeline

    config: ImportSettings = settings.importer
    pipeline = resolve_pipeline(settings)
    total = count_records(path)
    stats = ImportStats()
    with report(config, lambda: stats), Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=min(total, config.count or total))
        import_file(
            path, settings, pipeline, progress=lambda n: progress.advance(task, n), stats=stats
        )
    console.print(
        f"imported {stats.produced} of {total} records from {path} into {pipeline.topics.raw}"
        + (f" (stopped: {stats.stopped_by})" if stats.stopped_by else "")
    )
