"""The MQTT -> Kafka bridge (see `lakeless.bridge`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
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

from lakeless._mqtt import FastClient
from lakeless.bridge._settings import BridgeSettings
from lakeless.config import Settings
from lakeless.errors import LakelessError
from lakeless.kafka import ProgressLog, StageMetrics, make_producer
from lakeless.lifecycle import RunLimits, Stopper, stop_on_signals
from lakeless.pipeline import Pipeline

__all__ = ["Bridge", "BridgeError", "BridgeStats", "key_from_topic"]

logger = logging.getLogger(__name__)

#: Event times outside [2000-01-01, now + 5 min] are not used as record timestamps: the
#: record then carries the arrival time, so ``preprocess`` can tell the event time is wrong.
_EARLIEST_TS_MS = 946_684_800_000
_MAX_FUTURE_MS = 5 * 60 * 1000


class BridgeError(LakelessError):
    """The bridge cannot connect or subscribe."""


@dataclass
class BridgeStats:
    """Counts; ``acked`` messages are safely in Kafka (``in`` and ``out`` of every stage)."""

    received: int = 0
    acked: int = 0
    redelivered: int = 0
    produce_retries: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def rate(self) -> float:
        """Messages in Kafka per wall second."""
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The common stage fields (``in``, ``out``, ...) and the bridge's own."""
        return {
            "in": self.received,
            "out": self.acked,
            "dead_lettered": 0,
            "filtered": 0,
            "invalid": 0,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "stopped_by": self.stopped_by,
            "redelivered": self.redelivered,
            "produce_retries": self.produce_retries,
            "reconnects": self.reconnects,
        }


def key_from_topic(template: str) -> Callable[[str], str | None]:
    """A function giving the entity id from an MQTT topic that matches ``template``.

    Example:
        >>> key_of = key_from_topic("vehicles/{key}/sensors")
        >>> key_of("vehicles/car-7/sensors"), key_of("vehicles/car-7/other")
        ('car-7', None)
    """
    levels = template.split("/")
    position = levels.index("{key}")

    def key_of(topic: str) -> str | None:
        parts = topic.split("/")
        if len(parts) != len(levels) or not parts[position]:
            return None
        for part, level in zip(parts, levels, strict=True):
            if level not in ("{key}", "+") and part != level:
                return None
        return parts[position]

    return key_of


def _time_reader(time_field: str) -> Callable[[bytes, int], int]:
    """A function giving a payload's event time when plausible, else 0 (the producer's clock)."""
    meta: Any = msgspec.defstruct("EventTime", [("time", int)], rename={"time": time_field})
    decoder = msgspec.json.Decoder(meta)

    def event_time(payload: bytes, now_ms: int) -> int:
        try:
            ts: int = decoder.decode(payload).time
        except (msgspec.DecodeError, msgspec.ValidationError):
            return 0
        return ts if _EARLIEST_TS_MS <= ts <= now_ms + _MAX_FUTURE_MS else 0

    return event_time


class _Pending:
    """One MQTT message on its way to Kafka (acknowledged once ``delivered``)."""

    __slots__ = ("delivered", "key", "mid", "payload", "session", "timestamp")

    def __init__(self, session: int, mid: int) -> None:
        self.session = session
        self.mid = mid
        self.delivered = False
        self.payload = b""
        self.key: bytes | None = None
        self.timestamp = 0


class Bridge:
    """Forwards MQTT messages to Kafka; `run` until a limit, `request_stop` or SIGTERM.

    Readiness: the bridge is `ready` once Mosquitto acknowledged its subscription (SUBACK) in
    the current connection, and not while it is disconnected; `wait_ready` blocks until then
    (after a reconnect: ``wait_ready(sessions=2)``), so nothing published afterwards can be
    missed by this bridge, whatever its session held before.

    Args:
        settings: connections and ``settings.bridge`` (the bridge's own settings).
        pipeline: the pipeline whose raw topic is written (default: the built-in car fleet).
    """

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline or Pipeline.builtin(settings)
        self.bridge: BridgeSettings = settings.bridge
        self.template = self.bridge.topic_template(self.pipeline.name)
        self.subscription = self.bridge.subscription(self.pipeline.name)
        self._key_of = key_from_topic(self.template)
        self._event_time = _time_reader(self.pipeline.schema.time)
        self.stats = BridgeStats()
        self._producer: Any = None  # made by `run`: a bridge object alone opens no connection
        self._lock = threading.Lock()
        self._session = 0  # bumps on every (re)connect: older message ids are void
        self._order: deque[_Pending] = deque()
        # Readiness, guarded by `_state`: subscribed in this connection, sessions subscribed
        # so far, and why Mosquitto refused the subscription (if it did).
        self._state = threading.Condition()
        self._subscribed = False
        self._sessions = 0
        self._refused: str | None = None
        self._stopper: Stopper | None = None
        self._stopping = False  # our own disconnect: not a warning
        self.metrics = StageMetrics("bridge")
        self._progress_log = ProgressLog("bridge", self.bridge.log_interval, self.metrics)
        self._client = self._make_client()
        #: With the fast client, acknowledgements are sent once per producer poll, in batches.
        self._batched_acks = self._client if isinstance(self._client, FastClient) else None

    def _make_client(self) -> mqtt.Client:
        client: mqtt.Client
        if self.bridge.client == "fast":
            client = FastClient(
                CallbackAPIVersion.VERSION2,
                client_id=self.bridge.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
                on_fast_message=self._on_fast_message,
            )
        else:
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
        if (tls := mqtt_settings.tls_arguments()) is not None:
            client.tls_set(**tls)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # ---- readiness -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected, and Mosquitto acknowledged the subscription in this connection."""
        with self._state:
            return self._subscribed

    @property
    def sessions(self) -> int:
        """Connections in which the subscription was acknowledged so far (1 + reconnects)."""
        with self._state:
            return self._sessions

    def wait_ready(self, timeout: float | None = None, *, sessions: int = 1) -> bool:
        """Block until the bridge is `ready` in its ``sessions``-th subscribed connection.

        A later connection counts too; ``False`` when ``timeout`` seconds passed first.

        Raises:
            BridgeError: Mosquitto refused the subscription.
        """
        with self._state:
            done = self._state.wait_for(
                lambda: (
                    self._refused is not None or (self._subscribed and self._sessions >= sessions)
                ),
                timeout,
            )
            if self._refused is not None:
                raise BridgeError(self._refused)
            return done

    # ---- MQTT side (paho's network thread) --------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.error("MQTT connection refused: %s", reason)
            with self._state:  # `run` stops on a refused connection (e.g. a wrong password)
                self._refused = (
                    f"MQTT broker {self.settings.mqtt.url} refused user "
                    f"{self.settings.mqtt.username!r}: {reason}"
                )
                self._state.notify_all()
            return
        if not flags.session_present and self._session == 0:
            # MQTT delivers to a subscription only what is published after it exists: without
            # a stored session, what devices sent before this moment is not coming.
            logger.info(
                "no MQTT session of client id %r on %s yet: only messages published from now "
                "on reach Kafka (start the bridge before the devices; the session then keeps "
                "messages across bridge restarts for %d s)",
                self.bridge.client_id,
                self.settings.mqtt.url,
                self.bridge.session_expiry_s,
            )
        with self._lock:
            self._session += 1
            # Messages of an earlier connection that Kafka has not acknowledged yet will be
            # redelivered by the broker; their old message ids must never be acknowledged now.
            self._order.clear()
        if self._session > 1:
            self.stats.reconnects += 1
        try:
            client.subscribe(self.subscription, qos=1)
        except ValueError as exc:  # paho refuses a malformed filter before sending it
            with self._state:
                self._refused = f"cannot subscribe to {self.subscription!r}: {exc}"
                self._state.notify_all()
            return
        logger.info(
            "bridge connected to %s, subscribing to %s", self.settings.mqtt.url, self.subscription
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = [str(code) for code in reasons if code.is_failure]
        with self._state:
            if refused:
                self._refused = (
                    f"MQTT broker {self.settings.mqtt.url} refused the subscription to "
                    f"{self.subscription}: {', '.join(refused)}"
                )
                logger.error("%s", self._refused)
            else:
                self._subscribed = True
                self._sessions += 1
                logger.info("bridge subscribed to %s (SUBACK)", self.subscription)
            self._state.notify_all()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._state:
            self._subscribed = False
        if self._stopping:
            logger.info("MQTT disconnected (%s)", reason)
        else:
            logger.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._on_fast_message(message.topic, message.mid, bool(message.dup), bytes(message.payload))

    def _on_fast_message(self, topic: str, mid: int, dup: bool, payload: bytes) -> None:
        with self._lock:
            pending = _Pending(self._session, mid)
            self._order.append(pending)
        self.stats.received += 1
        if dup:
            self.stats.redelivered += 1
        entity = self._key_of(topic)
        pending.key = entity.encode() if entity else None
        pending.payload = payload
        pending.timestamp = self._event_time(payload, int(time.time() * 1000))
        self._produce(pending)

    def _produce(self, pending: _Pending) -> None:
        callback = partial(self._on_delivery, pending)
        while True:
            try:
                self._producer.produce(
                    self.pipeline.topics.raw,
                    pending.payload,
                    pending.key,
                    timestamp=pending.timestamp,
                    on_delivery=callback,
                )
                return
            except BufferError:
                time.sleep(0.005)  # the main thread's poll() drains the queue

    # ---- Kafka side (the main thread, inside producer.poll) ----------------------------------

    def _on_delivery(self, pending: _Pending, error: ConfluentError | None, _msg: Message) -> None:
        if error is not None:
            if error.fatal():
                raise BridgeError(f"Kafka producer failed fatally: {error}")
            self.stats.produce_retries += 1
            logger.warning("produce failed (%s); retrying", error)
            self._produce(pending)
            return
        pending.delivered = True
        pending.payload = b""  # nothing to retry any more
        if self._batched_acks is None:
            self._ack_in_order()

    def _ack_in_order(self) -> None:
        # MQTT wants QoS 1 acknowledgements in the order the messages arrived.
        batched = self._batched_acks
        with self._lock:
            order = self._order
            session = self._session
            mids = []
            while order and order[0].delivered:
                done = order.popleft()
                if done.session == session:
                    mids.append(done.mid)
            if not mids:
                return
            if batched is not None:
                batched.ack_many(mids)  # one write for the whole run of messages
            else:
                for mid in mids:
                    self._client.ack(mid, 1)
            self.stats.acked += len(mids)

    # ---- lifecycle --------------------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask a running `run` to stop: it flushes Kafka and acknowledges what it can first.

        Thread-safe; a request before `run` starts is ignored.
        """
        stopper = self._stopper
        if stopper is not None:
            stopper.request_stop(reason)

    def run(self, limits: RunLimits | None = None, connect_timeout: float = 30.0) -> BridgeStats:
        """Forward messages until a limit (default: the settings'), `request_stop` or a signal.

        SIGTERM and SIGINT stop it when it runs in the main thread.

        ``limits.count`` counts messages safely in Kafka (acknowledged on both sides).

        Raises:
            BridgeError: Mosquitto cannot be reached, or has not acknowledged the
                subscription, within ``connect_timeout`` seconds; or it refused the
                subscription.
        """
        stopper = self._stopper = Stopper(limits or self.bridge.limits())
        started = time.monotonic()
        self._stopping = False
        if self._producer is None:
            self._producer = make_producer(
                self.settings.kafka, linger_ms=self.bridge.linger_ms, message_timeout_ms=0
            )
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
            if not self.wait_ready(connect_timeout):
                raise BridgeError(
                    f"no subscribed MQTT session with {mqtt_settings.url} after "
                    f"{connect_timeout:.0f}s"
                )
            if self.bridge.metrics_port:
                self.metrics.serve(
                    self.bridge.metrics_port, self.bridge.metrics_host, self.settings.http
                )
            with stop_on_signals(stopper):
                acked = received = 0
                while not stopper.done:
                    self._producer.poll(0.05)
                    if self._batched_acks is not None:
                        self._ack_in_order()
                    # Idle means no MQTT input: a Kafka outage must not stop the bridge.
                    if self.stats.received != received:
                        self.metrics.events.inc(self.stats.received - received)
                        received = self.stats.received
                        stopper.saw_input()
                    stopper.add(self.stats.acked - acked)
                    self.metrics.outputs.inc(self.stats.acked - acked)
                    acked = self.stats.acked
                    self._progress()
            logger.info("bridge stopping: %s", stopper.reason)
            self._producer.flush(30)
            self._producer.poll(0)
            self._ack_in_order()  # queued before the DISCONNECT, so written first
            self.stats.stopped_by = stopper.reason or "stopped"
        finally:
            self.stats.seconds += time.monotonic() - started
            self._stopper = None
            self._stopping = True
            self._client.disconnect()
            self._client.loop_stop()
            self.metrics.close()
        return self.stats

    def _progress(self) -> None:
        """Every ``log_interval`` seconds: a progress line, the rate and the backlog metrics."""
        if not self._progress_log.due():
            return
        pending = self.stats.received - self.stats.acked
        # The bridge's backlog: received from MQTT, not yet acknowledged by Kafka.
        self.metrics.lag.labels(self.pipeline.topics.raw, "mqtt").set(pending)
        fields = {k: v for k, v in self.stats.to_dict().items() if k not in ("seconds", "rate")}
        fields.pop("stopped_by")
        self._progress_log.log(self.stats.acked, {**fields, "pending": pending})
