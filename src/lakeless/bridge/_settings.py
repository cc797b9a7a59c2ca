"""`BridgeSettings`: ``LAKELESS_BRIDGE__*`` and the options of ``lakeless bridge``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lakeless._options import ServiceOptions

__all__ = ["BridgeSettings"]

#: The MQTT topics of the car fleet; other pipelines default to ``<pipeline>/{key}``.
CAR_FLEET_TOPIC = "vehicles/{key}/sensors"


class BridgeSettings(ServiceOptions):
    """The bridge's own settings (MQTT and Kafka connections come from `Settings`).

    ``count`` counts messages forwarded; ``until_idle``, seconds without one.
    """

    mqtt_topic: str | None = Field(
        default=None,
        description="MQTT topic of the devices, with a {key} level for the entity id "
        "(default: vehicles/{key}/sensors for the car fleet, <pipeline>/{key} otherwise).",
    )
    share_group: str | None = Field(
        default=None,
        min_length=1,
        description="MQTT 5 shared-subscription group: bridges in one group split the messages "
        "(off by default: Mosquitto does not restore shared subscriptions after a restart).",
    )
    client_id: str = Field(
        default="lakeless-bridge-1",
        min_length=1,
        description="Stable MQTT client id, so the broker keeps this bridge's session (and its "
        "queue) across restarts; one per instance.",
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600, ge=0, description="MQTT session expiry interval, seconds."
    )
    receive_maximum: int = Field(
        default=20_000,
        ge=1,
        le=65_535,
        description="Unacknowledged QoS 1 messages Mosquitto may send before waiting.",
    )
    linger_ms: int = Field(default=5, ge=0, description="Producer linger.ms.")
    client: Literal["fast", "paho"] = Field(
        default="fast",
        description="MQTT receive path: fast (paho with batched reads and batched PUBACKs) or "
        "paho (one packet per read, one write per PUBACK; the slower reference).",
    )

    @field_validator("mqtt_topic")
    @classmethod
    def _has_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        levels = value.split("/")
        if levels.count("{key}") != 1:
            raise ValueError(f"the MQTT topic needs one {{key}} level, got {value!r}")
        for level in levels:
            if level not in ("{key}", "+") and ("+" in level or "#" in level or "{" in level):
                raise ValueError(
                    f"MQTT topic {value!r}: a level is a name, + (any one level) or {{key}}; "
                    f"got {level!r}"
                )
        return value

    @field_validator("share_group")
    @classmethod
    def _plain_group(cls, value: str | None) -> str | None:
        if value is not None and any(char in value for char in "/+#"):
            raise ValueError(f"a shared-subscription group has no '/', '+' or '#': {value!r}")
        return value

    def topic_template(self, pipeline: str) -> str:
        """The devices' topic with its ``{key}`` level."""
        if self.mqtt_topic:
            return self.mqtt_topic
        return CAR_FLEET_TOPIC if pipeline == "car-fleet" else f"{pipeline}/{{key}}"

    def subscription(self, pipeline: str) -> str:
        """The topic filter actually subscribed."""
        topic = self.topic_template(pipeline).replace("{key}", "+")
        if self.share_group:
            return f"$share/{self.share_group}/{topic}"
        return topic
