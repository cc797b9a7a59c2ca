"""``lakeless score``: the live model scores ``sensor-clean`` into ``anomalies``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


class Guarantee(StrEnum):
    """Delivery guarantee of the outputs."""

    at_least_once = "at-least-once"
    exactly_once = "exactly-once"


class LogFormat(StrEnum):
    """How log lines look."""

    text = "text"
    json = "json"


def _env(name: str) -> str:
    return f"LAKELESS_SCORE_{name}"


def score(
    model: Annotated[
        str, typer.Option(envvar=_env("MODEL"), help="Registry name of the model to follow.")
    ] = "car-autoencoder",
    group_id: Annotated[
        str, typer.Option(envvar=_env("GROUP_ID"), help="Kafka consumer group.")
    ] = "lakeless-score",
    guarantee: Annotated[
        Guarantee,
        typer.Option(
            envvar=_env("GUARANTEE"),
            help="at-least-once (commit after acks) or exactly-once (Kafka transactions; "
            "read outputs with isolation.level=read_committed).",
        ),
    ] = Guarantee.at_least_once,
    processes: Annotated[
        int,
        typer.Option(
            envvar=_env("PROCESSES"), min=1, help="Group members to run here (one core each)."
        ),
    ] = 1,
    batch_size: Annotated[
        int,
        typer.Option(envvar=_env("BATCH_SIZE"), min=1, max=100_000, help="Most records a batch."),
    ] = 5000,  # lakeless.score.DEFAULT_BATCH_SIZE (not imported: keeps --help cheap)
    batch_ms: Annotated[
        int,
        typer.Option(
            envvar=_env("BATCH_MS"), min=1, max=60_000, help="Most ms a batch waits for records."
        ),
    ] = 100,  # lakeless.score.DEFAULT_BATCH_MS
    top_k: Annotated[
        int,
        typer.Option(envvar=_env("TOP_K"), min=0, max=18, help="Features named per anomaly."),
    ] = 3,
    all_scores: Annotated[
        bool,
        typer.Option(envvar=_env("ALL_SCORES"), help="Also write every score to `scores`."),
    ] = False,
    threads: Annotated[
        int,
        typer.Option(envvar=_env("THREADS"), min=0, help="ONNX Runtime intra-op threads."),
    ] = 1,
    instance: Annotated[
        str | None,
        typer.Option(
            envvar=_env("INSTANCE"),
            help="This scorer's name in its transactional.id (default: the host name); "
            "scorers on one host need distinct names with exactly-once.",
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar=_env("METRICS_PORT"),
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port (0: off); worker i uses port + i.",
        ),
    ] = 0,
    log_format: Annotated[
        LogFormat, typer.Option(envvar=_env("LOG_FORMAT"), help="text or json log lines.")
    ] = LogFormat.text,
    log_interval: Annotated[
        float,
        typer.Option(envvar=_env("LOG_INTERVAL"), min=0, help="Seconds between progress lines."),
    ] = 10.0,
    count: Annotated[
        int | None,
        typer.Option(envvar=_env("COUNT"), min=1, help="Stop after N records (per process)."),
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
            envvar=_env("STATS_JSON"), dir_okay=False, help="Write the run's counts as JSON here."
        ),
    ] = None,
    via: Annotated[
        str | None,
        typer.Option(
            envvar=_env("VIA"),
            help="Score each batch with one request to this `lakeless serve` URL instead of "
            "embedding the model (outputs carry the server's model version).",
        ),
    ] = None,
) -> None:
    """Score sensor-clean with the live registry model; anomalies to `anomalies`.

    Hot-swaps to a newly promoted model between batches; a refused model never replaces the
    current one. SIGTERM finishes and commits the current batch, then exits 0.
    """
    import functools
    import logging

    from lakeless.config import load_settings
    from lakeless.lifecycle import RunLimits
    from lakeless.score import ScoreSettings, ScoreStage, run_processes
    from lakeless.score._logging import configure_logging

    level = logging.getLevelName(logging.getLogger().level)
    if log_format is LogFormat.json:
        configure_logging(level, "json")
    settings = load_settings()
    config = ScoreSettings(
        group_id=group_id,
        model=model,
        guarantee=guarantee.value,
        batch_size=batch_size,
        batch_ms=batch_ms,
        top_k=top_k,
        all_scores=all_scores,
        intra_op_threads=threads,
        instance=instance,
        metrics_port=metrics_port,
        log_interval=log_interval,
    )
    topics = settings.topics
    console = Console(stderr=True)
    console.print(
        f"score: {topics.clean} -> {topics.anomalies}"
        f"{f' + {topics.scores}' if all_scores else ''} with model {model} "
        f"({guarantee.value}, group {group_id}, {processes} process(es), "
        f"batches of {batch_size} / {batch_ms} ms)"
    )
    factory = None
    if via is not None:
        from lakeless.serve import HttpScorerFactory

        factory = HttpScorerFactory(via)
        console.print(f"score: scoring via the model server {via}")
    limits = RunLimits(count=count, timeout=timeout, until_idle=until_idle)
    if processes == 1:
        stats = ScoreStage(settings, config, scorer_factory=factory).run(limits)
    else:
        setup = functools.partial(configure_logging, level, log_format.value)
        stats = run_processes(
            settings, config, limits, processes, setup=setup, scorer_factory=factory
        )
    if stats_json is not None:
        stats_json.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    console.print(
        f"score: {stats.events} events, {stats.anomalies} anomalies, "
        f"{stats.rate:,.0f} events/s; models {dict(stats.by_model)}; stopped by {stats.stopped_by}"
    )
