"""``lakeless bridge``: MQTT -> the pipeline's raw topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeless._cli import console, report, settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings


@settings_command("bridge")
def bridge(settings: Settings) -> None:
    """Forward MQTT messages to Kafka, acknowledging each only once Kafka has it."""
    from lakeless.bridge import Bridge
    from lakeless.pipeline import resolve_pipeline

    pipeline = resolve_pipeline(settings)
    runner = Bridge(settings, pipeline)
    console.print(f"bridge: {runner.subscription} -> {pipeline.topics.raw}")
    with report(settings.bridge, lambda: runner.stats):
        stats = runner.run()
    console.print(
        f"bridge: received {stats.received}, in Kafka {stats.acked}, "
        f"redelivered {stats.redelivered}, produce retries {stats.produce_retries}, "
        f"reconnects {stats.reconnects}"
    )
