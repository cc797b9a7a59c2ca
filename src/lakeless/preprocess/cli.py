"""``lakeless preprocess``: ``sensor-raw`` -> ``sensor-clean`` / ``sensor-dlq``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


class TimeReference(StrEnum):
    """What the event-time checks compare with."""

    wall_clock = "wall_clock"
    record = "record"


def _env(name: str) -> str:
    return f"LAKELESS_PREPROCESS_{name}"


def preprocess(
    where: Annotated[
        str | None,
        typer.Option(
            envvar=_env("WHERE"),
            help="Filter expression, e.g. \"speed > 0 and model == 'e-sedan'\"; records for "
            "which it is false are counted as filtered and not produced.",
        ),
    ] = None,
    group_id: Annotated[
        str, typer.Option(envvar=_env("GROUP_ID"), help="Kafka consumer group.")
    ] = "lakeless-preprocess",
    batch_size: Annotated[
        int,
        typer.Option(
            envvar=_env("BATCH_SIZE"),
            min=1,
            max=100_000,
            help="Records per consume / produce / commit cycle.",
        ),
    ] = 5000,  # lakeless.preprocess.DEFAULT_BATCH_SIZE (not imported: keeps --help cheap)
    time_reference: Annotated[
        TimeReference,
        typer.Option(
            envvar=_env("TIME_REFERENCE"),
            help="Reference for the ts_in_future / ts_too_old checks: the wall clock, or the "
            "record timestamp (capped at the wall clock; verdicts stable on replay).",
        ),
    ] = TimeReference.record,
    count: Annotated[
        int | None,
        typer.Option(envvar=_env("COUNT"), min=1, help="Stop after reading N records."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(envvar=_env("TIMEOUT"), help="Stop after S seconds.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(envvar=_env("UNTIL_IDLE"), help="Stop after S seconds without records."),
    ] = None,
    stats_json: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("STATS_JSON"),
            dir_okay=False,
            help="Write the run's counts as JSON to this file at exit (also on SIGTERM).",
        ),
    ] = None,
) -> None:
    """Validate sensor-raw into sensor-clean; dead-letter bad records with a reason header.

    Offsets are committed only after Kafka acknowledged every output of a batch
    (at-least-once). Counts always balance: in = clean + dlq + filtered.
    """
    from lakeless.config import load_settings
    from lakeless.errors import ConfigError
    from lakeless.lifecycle import RunLimits
    from lakeless.preprocess import FilterError, PreprocessSettings, PreprocessStage

    settings = load_settings()
    try:
        stage = PreprocessStage(
            settings,
            PreprocessSettings(
                group_id=group_id,
                batch_size=batch_size,
                where=where or None,
                time_reference=time_reference.value,
            ),
        )
    except FilterError as exc:
        raise ConfigError(f"--where: {exc}") from exc
    topics = settings.topics
    console = Console(stderr=True)
    console.print(
        f"preprocess: {topics.raw} -> {topics.clean} / {topics.dlq} "
        f"(group {group_id}, batches of {batch_size})"
    )
    try:
        stats = stage.run(RunLimits(count=count, timeout=timeout, until_idle=until_idle))
    finally:
        # Written on every exit, a failed run included: its counts cover the acknowledged
        # batches only, i.e. what a restart will not process again.
        if stats_json is not None:
            report = {
                **stage.stats.to_dict(),
                "stopped_by": stage.stopped_by or "error",
                "seconds": round(stage.seconds, 3),
                "rate": round(stage.rate, 1),
            }
            stats_json.write_text(json.dumps(report, indent=2) + "\n")
    by_reason = ", ".join(f"{k} {v}" for k, v in stats.to_dict()["dlq_by_reason"].items())
    console.print(
        f"preprocess: in {stats.received}, clean {stats.clean}, dead-lettered {stats.dlq}"
        f"{f' ({by_reason})' if by_reason else ''}, filtered {stats.filtered}; "
        f"{stage.rate:,.0f} records/s; stopped by {stage.stopped_by}"
    )
