"""MQTT -> Kafka bridge: every message from Mosquitto to the pipeline's raw topic, none lost.

An MQTT message is acknowledged (PUBACK) only after Kafka acknowledged its record (idempotent
producer, ``acks=all``), so a crash, a Kafka outage or a Mosquitto restart loses nothing: what was
not acknowledged is delivered again (MQTT 5 persistent session, ``clean_start=False``) and may
reach Kafka twice; duplicates are identified downstream by key and sequence (or time).

Records are keyed by the entity id from the MQTT topic (``vehicles/<car_id>/sensors`` for the car
fleet, ``<pipeline>/<key>`` for other pipelines; ``mqtt_topic`` with a ``{key}`` level sets
another) and stamped with the event's time when it is plausible (otherwise the producer's clock).
Payloads are forwarded byte-for-byte; judging them is ``preprocess``'s job.

Several bridges share the load through an MQTT 5 shared subscription
(``$share/<group>/vehicles/+/sensors``, ``share_group``). It is off by default because
Mosquitto 2.0.11 does not restore shared subscriptions from its persistence file: messages
published after a Mosquitto restart and before the bridges re-subscribe are lost. A bridge with a
plain persistent subscription gets them all after the restart (tested).

Example:
    >>> BridgeSettings().subscription("car-fleet")
    'vehicles/+/sensors'
    >>> BridgeSettings(share_group="bridges").subscription("pumps")
    '$share/bridges/pumps/+'
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.bridge._settings import BridgeSettings

if TYPE_CHECKING:
    from lakeless.bridge._bridge import Bridge, BridgeError, BridgeStats, key_from_topic

__all__ = ["Bridge", "BridgeError", "BridgeSettings", "BridgeStats", "key_from_topic"]

__getattr__ = lazy_attributes(
    __name__, {"._bridge": ["Bridge", "BridgeError", "BridgeStats", "key_from_topic"]}
)
