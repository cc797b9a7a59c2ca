"""MQTT -> Kafka bridge: every sensor message from Mosquitto to ``sensor-raw``, none lost.

An MQTT message is acknowledged (PUBACK) only after Kafka acknowledged its record (idempotent
producer, ``acks=all``), so a crash, a Kafka outage or a Mosquitto restart loses nothing: what was
not acknowledged is delivered again (MQTT 5 persistent session, ``clean_start=False``) and may
reach Kafka twice; duplicates are identified downstream by ``(car_id, seq)``.

Records are keyed by the car id from the MQTT topic ``vehicles/<car_id>/sensors`` and stamped
with the event's ``ts`` when it is a plausible time (otherwise the producer's clock). Payloads are
forwarded byte-for-byte; judging them is ``preprocess``'s job.

Several bridges share the load through an MQTT 5 shared subscription
(``$share/<group>/vehicles/+/sensors``, ``share_group``). It is off by default because
Mosquitto 2.0.11 does not restore shared subscriptions from its persistence file: messages
published after a Mosquitto restart and before the bridges re-subscribe are lost. A bridge with a
plain persistent subscription gets them all after the restart (tested).

Example:
    >>> BridgeSettings().subscription
    'vehicles/+/sensors'
    >>> BridgeSettings(share_group="bridges").subscription
    '$share/bridges/vehicles/+/sensors'
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import Message
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field

from lakeless.config import Settings
from lakeless.errors import LakelessError
from lakeless.kafka import make_producer
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals

__all__ = ["Bridge", "BridgeError", "BridgeSettings", "BridgeStats", "car_id_from_topic"]

logger = logging.getLogger(__name__)

#: Event times outside [2000-01-01, now + 5 min] are not used as record timestamps: the
#: record then carries the arrival time, so ``preprocess`` can tell the event time is wrong.
_EARLIEST_TS_MS = 946_684_800_000
_MAX_FUTURE_MS = 5 * 60 * 1000


class BridgeError(LakelessError):
    """The bridge cannot connect or subscribe."""


class BridgeSettings(BaseModel):
    """The bridge's own settings (MQTT and Kafka connections come from `Settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mqtt_topic: str = "vehicles/+/sensors"
    #: Shared-subscription group; bridges in one group split the messages. ``None``: no sharing
    #: (the default: see the module docstring for Mosquitto's restart caveat).
    share_group: str | None = None
    #: Stable id, so the broker keeps this bridge's session (and its queue) across restarts.
    client_id: str = "lakeless-bridge-1"
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    #: Unacknowledged QoS 1 messages Mosquitto may send before waiting (MQTT 5 Receive Maximum).
    receive_maximum: int = Field(default=20_000, ge=1, le=65_535)
    #: Kafka retries forever (``message.timeout.ms=0``): an outage only waits.
    linger_ms: int = 5

    @property
    def subscription(self) -> str:
        """The topic filter actually subscribed."""
        if self.share_group:
            return f"$share/{self.share_group}/{self.mqtt_topic}"
        return self.mqtt_topic


@dataclass
class BridgeStats:
    """Counts; ``acked`` messages are safely in Kafka."""

    received: int = 0
    acked: int = 0
    redelivered: int = 0
    produce_retries: int = 0
    reconnects: int = 0


class _Ts(msgspec.Struct):
    ts: int


_ts_decoder = msgspec.json.Decoder(_Ts)


def car_id_from_topic(topic: str) -> str | None:
    """``vehicles/<car_id>/sensors`` -> ``car_id``; anything else -> ``None``."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "vehicles" and parts[2] == "sensors" and parts[1]:
        return parts[1]
    return None


def _event_time(payload: bytes, now_ms: int) -> int:
    """The event's ``ts`` when plausible, else 0 (the producer then uses its clock)."""
    try:
        ts = _ts_decoder.decode(payload).ts
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0
    return ts if _EARLIEST_TS_MS <= ts <= now_ms + _MAX_FUTURE_MS else 0


@dataclass
class _Pending:
    session: int
    mid: int
    delivered: bool = False


class Bridge:
    """Forwards MQTT messages to Kafka; `run` until a limit or SIGTERM.

    Args:
        settings: connections and topic names.
        bridge: the bridge's own settings.
    """

    def __init__(self, settings: Settings, bridge: BridgeSettings | None = None) -> None:
        self.settings = settings
        self.bridge = bridge or BridgeSettings()
        self.stats = BridgeStats()
        self._producer = make_producer(
            settings.kafka,
            linger_ms=self.bridge.linger_ms,
            message_timeout_ms=0,
        )
        self._lock = threading.Lock()
        self._session = 0  # bumps on every (re)connect: older message ids are void
        self._order: deque[_Pending] = deque()
        self._connected = threading.Event()
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.bridge.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        mqtt_settings = self.settings.mqtt
        if mqtt_settings.username:
            password = mqtt_settings.password.get_secret_value() if mqtt_settings.password else None
            client.username_pw_set(mqtt_settings.username, password)
        if mqtt_settings.url.startswith("mqtts://"):
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # ---- MQTT side (paho's network thread) --------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.error("MQTT connection refused: %s", reason)
            return
        with self._lock:
            self._session += 1
            # Messages of an earlier connection that Kafka has not acknowledged yet will be
            # redelivered by the broker; their old message ids must never be acknowledged now.
            self._order.clear()
        if self._session > 1:
            self.stats.reconnects += 1
        client.subscribe(self.bridge.subscription, qos=1)
        logger.info(
            "bridge connected to %s, subscribed to %s",
            self.settings.mqtt.url,
            self.bridge.subscription,
        )
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        logger.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            pending = _Pending(self._session, message.mid)
            self._order.append(pending)
        self.stats.received += 1
        if message.dup:
            self.stats.redelivered += 1
        car_id = car_id_from_topic(message.topic)
        key = car_id.encode() if car_id else None
        payload = bytes(message.payload)
        timestamp = _event_time(payload, int(time.time() * 1000))
        self._produce(payload, key, timestamp, pending)

    def _produce(
        self, payload: bytes, key: bytes | None, timestamp: int, pending: _Pending
    ) -> None:
        callback = partial(self._on_delivery, payload, key, timestamp, pending)
        while True:
            try:
                self._producer.produce(
                    self.settings.topics.raw,
                    payload,
                    key,
                    timestamp=timestamp,
                    on_delivery=callback,
                )
                return
            except BufferError:
                time.sleep(0.005)  # the main thread's poll() drains the queue

    # ---- Kafka side (the main thread, inside producer.poll) ----------------------------------

    def _on_delivery(
        self,
        payload: bytes,
        key: bytes | None,
        timestamp: int,
        pending: _Pending,
        error: ConfluentError | None,
        _msg: Message,
    ) -> None:
        if error is not None:
            if error.fatal():
                raise BridgeError(f"Kafka producer failed fatally: {error}")
            self.stats.produce_retries += 1
            logger.warning("produce failed (%s); retrying", error)
            self._produce(payload, key, timestamp, pending)
            return
        pending.delivered = True
        self._ack_in_order()

    def _ack_in_order(self) -> None:
        # MQTT wants QoS 1 acknowledgements in the order the messages arrived.
        with self._lock:
            while self._order and self._order[0].delivered:
                done = self._order.popleft()
                if done.session == self._session:
                    self._client.ack(done.mid, 1)
                    self.stats.acked += 1

    # ---- lifecycle --------------------------------------------------------------------------

    def run(self, limits: RunLimits | None = None, connect_timeout: float = 30.0) -> BridgeStats:
        """Forward messages until a limit in ``limits`` is reached or SIGTERM/SIGINT arrives.

        ``limits.count`` counts messages safely in Kafka (acknowledged on both sides).

        Raises:
            BridgeError: Mosquitto cannot be reached within ``connect_timeout`` seconds.
        """
        stopper = Stopper(limits)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.bridge.session_expiry_s
        properties.ReceiveMaximum = self.bridge.receive_maximum
        mqtt_settings = self.settings.mqtt
        try:
            self._client.connect(
                mqtt_settings.host, mqtt_settings.port, clean_start=False, properties=properties
            )
        except OSError as exc:
            raise BridgeError(f"cannot reach MQTT broker {mqtt_settings.url}: {exc}") from exc
        self._client.loop_start()
        try:
            if not self._connected.wait(connect_timeout):
                raise BridgeError(
                    f"no MQTT session with {mqtt_settings.url} after {connect_timeout:.0f}s"
                )
            with stop_on_signals(stopper):
                acked = received = 0
                while not stopper.done:
                    self._producer.poll(0.05)
                    # Idle means no MQTT input: a Kafka outage must not stop the bridge.
                    if self.stats.received != received:
                        received = self.stats.received
                        stopper.saw_input()
                    stopper.add(self.stats.acked - acked)
                    acked = self.stats.acked
            logger.info("bridge stopping: %s", stopper.reason)
            self._producer.flush(30)
            self._producer.poll(0)
        finally:
            self._client.disconnect()
            self._client.loop_stop()
        return self.stats
