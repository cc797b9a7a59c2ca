"""``lakeless score``: the live model scores ``NAME.clean`` into ``NAME.anomalies``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("score")
def score(settings: Settings) -> None:
    """Score the clean topic with the live registry model; anomalies to NAME.anomalies.

    Hot-swaps to a newly promoted model between batches; a refused model never replaces the
    current one. SIGTERM finishes and commits the current batch, then exits 0.
    """
    import functools
    import logging

    from lakeless.logs import configure_logging
    from lakeless.pipeline import resolve_pipeline
    from lakeless.score import ScoreStage, ScoreStats, run_processes

    config = settings.score
    pipeline = resolve_pipeline(settings)
    topics = pipeline.topics
    model = config.model or pipeline.model
    console.print(
        f"score: {topics.clean} -> {topics.anomalies}"
        f"{f' + {topics.scores}' if config.all_scores else ''} with model {model} "
        f"({config.guarantee}, pipeline {pipeline.name}, {config.processes} process(es), "
        f"batches of up to {config.batch_size})"
    )
    factory = None
    if config.via is not None:
        from lakeless.serve import HttpScorerFactory

        factory = HttpScorerFactory(config.via)
        console.print(f"score: scoring via the model server {config.via}")
    stats = ScoreStats()
    with report(config, lambda: stats):
        if config.processes == 1:
            stage = ScoreStage(settings, pipeline, scorer_factory=factory)
            stats = stage.stats
            stage.run()
        else:
            level = logging.getLevelName(logging.getLogger().level)
            setup = functools.partial(configure_logging, level, config.log_format)
            stats = run_processes(
                settings, pipeline, None, config.processes, setup=setup, scorer_factory=factory
            )
    console.print(
        f"score: {stats.events} events, {stats.anomalies} anomalies, "
        f"{stats.rate:,.0f} events/s; models {dict(stats.by_model)}; stopped by {stats.stopped_by}"
    )
