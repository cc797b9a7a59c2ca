"""``lakeless simulate``: run a car fleet into MQTT or Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from lakeless.errors import ConfigError


class Destination(StrEnum):
    """Where ``simulate`` sends events."""

    mqtt = "mqtt"
    kafka = "kafka"
    stdout = "stdout"
    null = "null"


def _env(name: str) -> str:
    return f"LAKELESS_SIMULATE_{name}"


def parse_start(value: str | None) -> int | None:
    """``--start`` as ms since the epoch: an integer (ms) or an ISO 8601 time (UTC if naive)."""
    if value is None or value == "now":
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--start must be ms since the epoch or ISO 8601, got {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def simulate(
    cars: Annotated[int, typer.Option(envvar=_env("CARS"), min=1, help="Number of cars.")] = 100,
    interval: Annotated[
        float, typer.Option(envvar=_env("INTERVAL"), help="Seconds between events of one car.")
    ] = 1.0,
    duration: Annotated[
        float | None,
        typer.Option(envvar=_env("DURATION"), help="Simulated seconds to run (default: forever)."),
    ] = None,
    failure_rate: Annotated[
        float,
        typer.Option(envvar=_env("FAILURE_RATE"), help="Failures per car per simulated hour."),
    ] = 0.5,
    repair_after: Annotated[
        float,
        typer.Option(
            envvar=_env("REPAIR_AFTER"), help="Simulated seconds from failure onset to repair."
        ),
    ] = 900.0,
    ramp: Annotated[
        float,
        typer.Option(
            envvar=_env("RAMP"), help="Simulated seconds for a failure to reach full severity."
        ),
    ] = 45.0,
    speedup: Annotated[
        float,
        typer.Option(
            envvar=_env("SPEEDUP"),
            help="Simulated seconds per wall second; 0: as fast as possible.",
        ),
    ] = 1.0,
    fast: Annotated[
        bool, typer.Option("--fast", envvar=_env("FAST"), help="Same as --speedup 0.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(
            envvar=_env("START"), help="Event time of the first step: ms, ISO 8601 or 'now'."
        ),
    ] = None,
    send_from: Annotated[
        str | None,
        typer.Option(
            envvar=_env("SEND_FROM"),
            help="Simulate but do not send events before this time (ms, ISO 8601 or 'now'): "
            "continues an earlier run with the same --seed and --start.",
        ),
    ] = None,
    to: Annotated[
        Destination, typer.Option(envvar=_env("TO"), help="Destination of the events.")
    ] = Destination.mqtt,
    seed: Annotated[
        int | None,
        typer.Option(envvar=_env("SEED"), min=0, help="Random seed (default: drawn, reported)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            envvar=_env("MODELS"), help="Comma-separated vehicle models (default: the mix)."
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option(envvar=_env("COUNT"), min=1, help="Stop after N events.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(envvar=_env("TIMEOUT"), help="Stop after N wall seconds.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", envvar=_env("JSON"), help="Print the statistics as JSON.")
    ] = False,
) -> None:
    """Simulate a car fleet sending sensor events over MQTT (QoS 1) or straight to Kafka."""
    from rich.console import Console
    from rich.table import Table

    from lakeless.config import load_settings
    from lakeless.fleet import FleetSettings, Simulator

    config = FleetSettings(
        cars=cars,
        interval=interval,
        duration=duration,
        failure_rate=failure_rate,
        repair_after=repair_after,
        ramp=ramp,
        speedup=0.0 if fast else speedup,
        start=parse_start(start),
        send_from=parse_start(send_from),
        seed=seed,
        to=to.value,
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else None,
    )
    stats = Simulator(config, load_settings()).run(count=count, timeout=timeout)
    if as_json:
        typer.echo(json.dumps(stats.to_dict()))
        return
    console = Console(stderr=to is Destination.stdout)
    table = Table(title=f"simulate -> {to.value}", show_header=False)
    table.add_row("events", f"{stats.events:,} ({stats.rate:,.0f}/s)")
    table.add_row(
        "delivered / failed / pending", f"{stats.delivered} / {stats.failed} / {stats.pending}"
    )
    table.add_row("simulated", f"{stats.sim_seconds:,.0f} s in {stats.wall_seconds:,.1f} s wall")
    table.add_row("seed", str(stats.seed))
    table.add_row("stopped by", stats.stopped_by)
    table.add_row("healthy events", f"{stats.healthy:,}")
    for mode, started in stats.failures_started.items():
        table.add_row(f"{mode}", f"{started} started, {stats.labelled[mode]:,} events labelled")
    console.print(table)
