"""An MQTT test device: publishes at QoS 1 and waits for the broker's acknowledgements.

`Publisher` behaves like a device: a persistent MQTT 5 client that reconnects by itself and,
while disconnected, keeps QoS 1 messages queued and sends them once it is back (paho's
behaviour). `Publisher.wait_acked` waits on the PUBACKs themselves, not on a clock.

Example (needs Mosquitto, so not run here)::

    with Publisher(settings.mqtt) as device:
        device.publish([("vehicles/car-1/sensors", good_record())])
        assert device.wait_acked(30)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lakeless._mixins import Closing
from lakeless.config import MqttSettings

__all__ = ["Publisher"]


class Publisher(Closing):
    """A QoS 1 publisher that counts what the broker acknowledged (PUBACK).

    Args:
        settings: the broker.
        client_id: MQTT client id (default: a fresh one).
        connect_timeout: seconds to wait for the first CONNACK.

    Raises:
        ConnectionError: the broker did not accept the connection in time.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self._done = threading.Condition()
        # Counts, not message ids: ids wrap around after 65,535 messages.
        self._acked = 0
        self._published = 0
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"publisher-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_publish = self._on_publish
        self.client.on_connect = lambda *_args: self._connected.set()
        self.client.max_queued_messages_set(0)  # unbounded, also while disconnected
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect(settings.host, settings.port)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.close()
            raise ConnectionError(f"MQTT broker {settings.url} did not accept the connection")

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, _rc: Any, _props: Any) -> None:
        with self._done:
            self._acked += 1
            self._done.notify_all()

    def publish(self, messages: Iterable[tuple[str, bytes | None]]) -> int:
        """Publish ``(topic, payload)`` pairs at QoS 1 (queued while disconnected); the count."""
        count = 0
        for topic, payload in messages:
            with self._done:  # counted first: the PUBACK may come before `publish` returns
                self._published += 1
            self.client.publish(topic, payload, qos=1)
            count += 1
        return count

    @property
    def acked(self) -> int:
        """Messages the broker acknowledged so far."""
        with self._done:
            return self._acked

    def wait_acked(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every message published so far."""
        with self._done:
            return self._done.wait_for(lambda: self._acked >= self._published, timeout)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
