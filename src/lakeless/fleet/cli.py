"""``lakeless simulate``: run simulated devices (the car fleet, or pumps) into MQTT or Kafka."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("simulate")
def simulate(
    settings: Settings,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Simulate devices sending events over MQTT (QoS 1) or straight to Kafka.

    The pipeline picks the devices: the car fleet by default, or the pumps example
    (``--pipeline pumps``). With --fast and --duration the simulated time ends now.
    """
    from rich.table import Table

    from lakeless.fleet import SimulationStats, Simulator

    config = settings.simulate
    stats = SimulationStats()
    simulator = Simulator(config, settings)
    with report(config, lambda: stats):
        stats = simulator.run()
    if as_json:
        typer.echo(json.dumps(stats.to_dict()))
    else:
        table = Table(title=f"simulate -> {config.to}", show_header=False)
        table.add_row("events", f"{stats.events:,} ({stats.rate:,.0f}/s)")
        table.add_row(
            "delivered / failed / pending", f"{stats.delivered} / {stats.failed} / {stats.pending}"
        )
        table.add_row(
            "simulated", f"{stats.sim_seconds:,.0f} s in {stats.wall_seconds:,.1f} s wall"
        )
        table.add_row("seed", str(stats.seed))
        table.add_row("stopped by", stats.stopped_by)
        table.add_row("healthy events", f"{stats.healthy:,}")
        for mode, started in stats.failures_started.items():
            table.add_row(mode, f"{started} started, {stats.labelled[mode]:,} events labelled")
        console.print(table)
    if stats.events and stats.delivered < stats.events:
        raise typer.Exit(1)  # events were sent that the destination did not acknowledge
