"""``lakeless import FILE``: recorded data into ``sensor-raw``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from lakeless.config import load_settings
from lakeless.errors import ConfigError
from lakeless.importer import CsvMapping, count_records, import_file
from lakeless.lifecycle import RunLimits


def import_command(
    path: Annotated[Path, typer.Argument(help="A .csv or .jsonl file, optionally .gz.")],
    scale: Annotated[
        list[str] | None,
        typer.Option(
            envvar="LAKELESS_IMPORT_SCALE",
            help="FIELD=FACTOR, multiply a CSV field (repeatable), e.g. battery_percentage=100.",
        ),
    ] = None,
    model: Annotated[
        str, typer.Option(envvar="LAKELESS_IMPORT_MODEL", help="Vehicle model when none is given.")
    ] = "unknown",
    time_unit: Annotated[
        str, typer.Option(envvar="LAKELESS_IMPORT_TIME_UNIT", help="CSV time unit: auto, s or ms.")
    ] = "auto",
    count: Annotated[
        int | None, typer.Option(envvar="LAKELESS_IMPORT_COUNT", help="Stop after N records.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(envvar="LAKELESS_IMPORT_TIMEOUT", help="Stop after S seconds.")
    ] = None,
) -> None:
    """Replay recorded sensor data into Kafka, keeping the original event times."""
    if time_unit not in ("auto", "s", "ms"):
        raise ConfigError(f"--time-unit must be auto, s or ms, not {time_unit!r}")
    factors: dict[str, float] = {}
    for item in scale or []:
        name, sep, factor = item.partition("=")
        try:
            factors[name.strip()] = float(factor)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"--scale wants FIELD=FACTOR, got {item!r}")
    mapping = CsvMapping(time_unit=time_unit, default_model=model, scale=factors)  # type: ignore[arg-type]
    settings = load_settings()
    console = Console(stderr=True)
    total = count_records(path)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=min(total, count or total))
        stats = import_file(
            path,
            settings,
            mapping,
            RunLimits(count=count, timeout=timeout),
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"imported {stats.produced} of {total} records from {path} into {settings.topics.raw}"
        + (f" (stopped: {stats.stopped_by})" if stats.stopped_by else "")
    )
