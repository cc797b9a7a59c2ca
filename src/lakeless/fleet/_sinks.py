"""Where simulated events go: MQTT (QoS 1), Kafka, stdout, memory or nowhere.

A sink takes slices of a `FleetBatch` or `PumpBatch` (``send``), is flushed once at the end
(``flush`` returns how many events are still unacknowledged) and closed. ``sent`` counts
events handed over; ``delivered`` counts acknowledgements where the transport has them (MQTT
PUBACK, Kafka delivery report), ``failed`` the events the transport reported lost.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import IO, TYPE_CHECKING, Any, Final

import msgspec

from lakeless.errors import LakelessError

if TYPE_CHECKING:
    from lakeless.config import KafkaSettings, MqttSettings
    from lakeless.fleet._fleet import FleetBatch
    from lakeless.fleet._pumps import PumpBatch

    DeviceBatch = FleetBatch | PumpBatch
    from lakeless.fleet._schema import SensorEvent

logger = logging.getLogger(__name__)

#: MQTT topic of a car's events.
#: The car fleet's MQTT topic; `MqttSink` takes any ``{key}`` template.
MQTT_TOPIC: Final = "vehicles/{key}/sensors"

_encode = msgspec.json.Encoder().encode


class SimulationError(LakelessError):
    """The simulator cannot reach or write to its destination."""


def encode_slice(batch: DeviceBatch, start: int, stop: int) -> list[bytes]:
    """JSON bytes of rows ``start:stop`` (the raw topic's format)."""
    return [_encode(event) for event in batch.events(start, stop)]


class BaseEventSink(ABC):
    """Destination of simulated events."""

    def __init__(self) -> None:
        self.sent = 0
        self.delivered = 0
        self.failed = 0

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect; called once before the first `send`."""

    @abstractmethod
    def send(self, batch: DeviceBatch, start: int, stop: int) -> None:
        """Hand over rows ``start:stop`` of ``batch``."""

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for acknowledgements; return how many are missing."""
        del timeout
        self.delivered = self.sent - self.failed
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect; called once at the end, after `flush`."""


class NullSink(BaseEventSink):
    """Encodes events (so generation is measured in full) and drops them."""

    def send(self, batch: DeviceBatch, start: int, stop: int) -> None:
        """Encode and forget."""
        encode_slice(batch, start, stop)
        self.sent += stop - start


class MemorySink(BaseEventSink):
    """Keeps every event in `events` (for tests and notebooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[SensorEvent] = []

    def send(self, batch: DeviceBatch, start: int, stop: int) -> None:
        """Append the rows as `SensorEvent` objects."""
        self.events.extend(batch.events(start, stop))
        self.sent += stop - start


class StreamSink(BaseEventSink):
    """Writes JSON lines to a binary stream (``--to stdout``)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream

    def send(self, batch: DeviceBatch, start: int, stop: int) -> None:
        """Write one JSON line per event."""
        lines = encode_slice(batch, start, stop)
        lines.append(b"")
        self._stream.write(b"\n".join(lines))
        self.sent += stop - start

    def flush(self, timeout: float) -> int:
        """Flush the stream."""
        self._stream.flush()
        return super().flush(timeout)


class MqttSink(BaseEventSink):
    """Publishes each event to its device's topic (``vehicles/<car_id>/sensors``) with paho-mqtt.

    paho's network thread (``loop_start``) sends and receives acknowledgements while the
    simulator publishes. At most ``max_inflight`` QoS 1 messages are on the wire unacknowledged;
    the rest wait in paho's queue (unbounded, ``max_queued_messages_set(0)``), and `send` blocks
    while more than ``max_outstanding`` are unacknowledged, so a slow broker slows the simulator
    down instead of filling memory.

    Args:
        settings: broker URL and credentials.
        topic: the devices' topic template, with a ``{key}`` level for the device id.
        qos: MQTT quality of service (1: at least once).
        client_id: MQTT client id; default ``lakeless-sim-<pid>``.
        max_inflight: paho's in-flight window. Bigger is slower: paho scans the in-flight
            messages on every PUBACK, so 1,000 halves and 10,000 ruins the rate; 20-200 all give
            about 18,000 acknowledged messages/s to a local Mosquitto on one core.
        max_outstanding: unacknowledged messages `send` lets pile up before it waits.
        connect_timeout: seconds to wait for the broker's CONNACK.
        fast: publish each `send` as one write of QoS 1 packets and read PUBACKs in batches
            (`lakeless._mqtt.FastClient`; unacknowledged messages are sent again, flagged
            DUP, after a reconnect); ``False``: paho's ``publish`` per message, bounded by
            ``max_inflight`` (about 5x the CPU per message).
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        topic: str = MQTT_TOPIC,
        qos: int = 1,
        client_id: str | None = None,
        max_inflight: int = 100,
        max_outstanding: int = 20_000,
        connect_timeout: float = 10.0,
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.fast = fast and qos == 1
        self.settings = settings
        self.topic = topic
        self.qos = qos
        self.client_id = client_id
        self.max_inflight = max_inflight
        # Packet ids are 16 bits: the fast path keeps well below 65,535 in flight.
        self.max_outstanding = min(max_outstanding, 60_000) if self.fast else max_outstanding
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._connected = threading.Event()
        self._topics: list[Any] = []
        self._connects = 0
        self._topics_for: object = None
        self._acked = 0

    def open(self) -> None:
        """Connect and start paho's network thread.

        Raises:
            SimulationError: the broker refused or did not answer in time.
        """
        import os

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client_id = self.client_id or f"lakeless-sim-{os.getpid()}"
        client: Any
        if self.fast:
            from lakeless._mqtt import FastClient

            client = FastClient(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                on_fast_puback=self._on_fast_puback,
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
            )
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)  # unbounded: `send` applies the back-pressure
        if self.settings.username:
            password = self.settings.password
            client.username_pw_set(
                self.settings.username, password.get_secret_value() if password else None
            )
        if (tls := self.settings.tls_arguments()) is not None:
            client.tls_set(**tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        host, port = self.settings.host, self.settings.port
        try:
            client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise SimulationError(f"cannot reach MQTT broker {host}:{port}: {exc}") from exc
        client.loop_start()
        self._client = client
        if not self._connected.wait(self.connect_timeout):
            client.loop_stop()
            raise SimulationError(f"MQTT broker {host}:{port} did not accept the connection")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT connection refused: %s", reason)
            return
        self._connects += 1
        if self.fast and self._connects > 1:
            resent = client.resend()  # paho dropped its queue; the session did not keep them
            logger.info("MQTT reconnected: sending %d unacknowledged messages again", resent)
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("MQTT connection lost (%s); paho reconnects", reason)

    def _on_fast_puback(self, mid: int) -> None:
        self._acked += 1  # paho's thread is the only writer

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # Runs on paho's thread, the only writer of this counter.
        self._acked += 1

    def send(self, batch: DeviceBatch, start: int, stop: int) -> None:
        """Publish rows ``start:stop``, one message per event."""
        if self._topics_for is not batch.car_ids:
            self._topics = [self.topic.format(key=key) for key in batch.car_ids]
            if self.fast:
                self._topics = [topic.encode() for topic in self._topics]
            self._topics_for = batch.car_ids
        size = stop - start
        while self.sent - self._acked + size > max(self.max_outstanding, size):
            time.sleep(0.002)
        payloads = encode_slice(batch, start, stop)
        if self.fast:
            self._client.publish_many(self._topics[start:stop], payloads)
            self.sent += size
            return
        publish = self._client.publish
        qos = self.qos
        topics = self._topics
        for index, payload in enumerate(payloads, start):
            publish(topics[index], payload, qos)
        self.sent += size

    def flush(self, timeout: float) -> int:
        """Wait until the broker acknowledged every message or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while self._acked < self.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        self.delivered = self._acked
        return self.sent - self._acked

    def close(self) -> None:
        """Disconnect and stop paho's thread."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


class KafkaSink(BaseEventSink):
    """Produces each event to a Kafka topic: key = device id, record timestamp = event time.

    Uses `lakeless.kafka.make_producer` (idempotent, ``acks=all``), with larger batches by
    default; ``overrides`` are librdkafka properties with ``_`` for ``.``.
    """

    def __init__(self, settings: KafkaSettings, topic: str, **overrides: Any) -> None:
        super().__init__()
        self.settings = settings
        self.topic = topic
        self.overrides = {"linger_ms": 20, "batch_num_messages": 10_000, **overrides}
        self._producer: Any = None
        self._keys: list[bytes] = []
        self._keys_for: object = None
        self._errors_logged = 0

    def open(self) -> None:
        """Create the producer."""
        from lakeless.kafka import make_producer

        self._producer = make_producer(self.settings, **self.overrides)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        if self._errors_logged < 5:
            self._errors_logged += 1
            logger.error("delivery to %s failed: %s", self.topic, err)

    def send(self, batch: DeviceBatch, start: int, stop: int) -> None:
        """Produce rows ``start:stop``."""
        if self._keys_for is not batch.car_ids:
            self._keys = [car_id.encode() for car_id in batch.car_ids]
            self._keys_for = batch.car_ids
        producer = self._producer
        produce = producer.produce
        topic, keys, callback = self.topic, self._keys, self._on_delivery
        timestamps = batch.ts[start:stop].tolist()
        for index, (payload, ts) in enumerate(
            zip(encode_slice(batch, start, stop), timestamps, strict=True), start
        ):
            while True:
                try:
                    produce(topic, payload, keys[index], timestamp=ts, on_delivery=callback)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        self.sent += stop - start

    def flush(self, timeout: float) -> int:
        """Wait for delivery reports; return how many messages are still queued."""
        if self._producer is None:
            return 0
        return int(self._producer.flush(timeout))
