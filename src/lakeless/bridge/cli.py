"""``lakeless bridge``: MQTT -> ``sensor-raw``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from lakeless.bridge import Bridge, BridgeSettings
from lakeless.config import load_settings
from lakeless.lifecycle import RunLimits


def bridge(
    client_id: Annotated[
        str,
        typer.Option(
            envvar="LAKELESS_BRIDGE_CLIENT_ID", help="Stable MQTT client id (one per instance)."
        ),
    ] = "lakeless-bridge-1",
    share_group: Annotated[
        str,
        typer.Option(
            envvar="LAKELESS_BRIDGE_SHARE_GROUP",
            help="MQTT 5 shared-subscription group ('' for none).",
        ),
    ] = "lakeless-bridge",
    mqtt_topic: Annotated[
        str, typer.Option(envvar="LAKELESS_BRIDGE_MQTT_TOPIC", help="MQTT topic filter.")
    ] = "vehicles/+/sensors",
    count: Annotated[
        int | None, typer.Option(envvar="LAKELESS_BRIDGE_COUNT", help="Stop after N messages.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(envvar="LAKELESS_BRIDGE_TIMEOUT", help="Stop after S seconds.")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            envvar="LAKELESS_BRIDGE_UNTIL_IDLE", help="Stop after S seconds without messages."
        ),
    ] = None,
) -> None:
    """Forward MQTT sensor messages to Kafka, acknowledging each only once Kafka has it."""
    settings = load_settings()
    runner = Bridge(
        settings,
        BridgeSettings(client_id=client_id, share_group=share_group or None, mqtt_topic=mqtt_topic),
    )
    stats = runner.run(RunLimits(count=count, timeout=timeout, until_idle=until_idle))
    Console(stderr=True).print(
        f"bridge: received {stats.received}, in Kafka {stats.acked}, "
        f"redelivered {stats.redelivered}, produce retries {stats.produce_retries}, "
        f"reconnects {stats.reconnects}"
    )
