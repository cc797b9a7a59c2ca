"""``lakeless preprocess``: ``NAME.raw`` -> ``NAME.clean`` / ``NAME.dlq``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("preprocess")
def preprocess(settings: Settings) -> None:
    """Validate the raw topic into the clean topic; dead-letter bad records with a reason.

    Offsets are committed only after Kafka acknowledged every output of a batch
    (at-least-once). Counts always balance: in = clean + dlq + filtered.
    """
    from lakeless.errors import ConfigError
    from lakeless.pipeline import resolve_pipeline
    from lakeless.preprocess import FilterError, PreprocessStage

    pipeline = resolve_pipeline(settings)
    try:
        stage = PreprocessStage(settings, pipeline)
    except FilterError as exc:
        raise ConfigError(f"--where: {exc}") from exc
    topics = pipeline.topics
    console.print(
        f"preprocess: {topics.raw} -> {topics.clean} / {topics.dlq} "
        f"(pipeline {pipeline.name}, group {stage.group_id})"
    )
    with report(settings.preprocess, lambda: stage.stats):
        stats = stage.run()
    by_reason = ", ".join(f"{k} {v}" for k, v in stats.to_dict()["dlq_by_reason"].items())
    console.print(
        f"preprocess: in {stats.received}, clean {stats.clean}, dead-lettered {stats.dlq}"
        f"{f' ({by_reason})' if by_reason else ''}, filtered {stats.filtered}; "
        f"{stats.rate:,.0f} records/s; stopped by {stats.stopped_by}"
    )
