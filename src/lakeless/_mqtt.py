"""paho's MQTT client with batched reads, batched PUBACKs and batched QoS 1 publishing.

Profiling the bridge (``lakeless bench pipeline`` runs the comparison) showed that most of a
message's cost was paho's, not Kafka's: for every PUBLISH, paho's network thread returns to
``select`` (``loop_read`` handles one packet when nothing is in flight outward), reads the fixed
header with two or three one-byte ``recv`` calls and the rest with a third, builds an
``MQTTMessage`` and parses MQTT 5 properties into objects; and every ``ack`` queues one
4-byte PUBACK, wakes the network thread through its socket pair and writes it with a ``send``
of its own. `FastClient` keeps paho for everything that is not the hot path (connecting,
subscribing, keep-alive, reconnects, sessions) and changes two things:

* reading: one ``recv`` of up to `RECV_BYTES` and every complete packet in it handled in one
  go; a QoS 1 PUBLISH goes straight to ``on_fast_message(topic, mid, dup, payload)`` (no
  message object, properties skipped unparsed); every other packet is handed to paho's own
  handler as if paho had read it. On return no complete packet is left in the buffer, so
  ``select`` never sleeps on data that was already read.
* acknowledging: `ack_many` queues the PUBACKs of many messages as one write (one wake-up
  and one ``send`` per batch).

Only what paho 2.1/2.2 has is used (``_packet_read``, ``_packet_handle``, ``_in_packet``,
``_packet_queue``, ``_sock_recv``); `check_paho` tells at construction when that changes, and
``BridgeSettings.client = "paho"`` is the plain path.

The publishing side (the simulator's `lakeless.fleet.MqttSink`) had the mirror image of the
same costs: per message a ``publish`` that wakes the network thread, a ``send``, and on the
PUBACK three or four ``recv`` calls and a scan of the in-flight messages. `publish_many`
builds the PUBLISH packets of many QoS 1 messages and queues them as one write; PUBACKs
go to ``on_fast_puback(mid)`` from the batched read path; the client keeps every
unacknowledged packet and sends them again, flagged DUP, after a reconnect (`resend`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

__all__ = [
    "RECV_BYTES",
    "FastClient",
    "FastMessageCallback",
    "check_paho",
    "pack_pubacks",
    "publish_packet",
]

#: Bytes asked of the socket per ``recv`` (a few hundred sensor events).
RECV_BYTES: Final = 256 * 1024
#: Packets handled per ``loop_read`` at most, so that writes (PUBACKs) get their turn.
MAX_PACKETS_PER_READ: Final = 5000

_PUBLISH: Final = 0x30
_PUBACK: Final = 0x40
#: A PUBACK is 0x40, remaining length 2, the packet id: one big-endian uint32 per message.
_PUBACK_WORD: Final = 0x4002_0000

#: ``on_fast_message(topic, mid, dup, payload)``: one QoS 1 PUBLISH, to acknowledge later.
FastMessageCallback = Callable[[str, int, bool, bytes], None]

_PRIVATE_API: Final = ("_packet_read", "_packet_handle", "_packet_queue", "_sock_recv")


def check_paho() -> None:
    """Raise `RuntimeError` when paho lacks the private methods `FastClient` builds on."""
    missing = [name for name in _PRIVATE_API if not callable(getattr(mqtt.Client, name, None))]
    if missing:
        raise RuntimeError(
            f"paho-mqtt {getattr(mqtt, '__version__', '?')} lacks {', '.join(missing)}: "
            "use the plain client (LAKELESS_BRIDGE__CLIENT=paho)"
        )


def pack_pubacks(mids: Sequence[int]) -> bytes:
    """The PUBACK packets of ``mids``, in order, as one buffer.

    Example:
        >>> pack_pubacks([1, 258]).hex()
        '4002000140020102'
    """
    return struct.pack(f"!{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def publish_packet(topic: bytes, mid: int, payload: bytes, *, mqtt5: bool = False) -> bytes:
    """A QoS 1 PUBLISH packet (MQTT 3.1.1, or 5 with no properties).

    Example:
        >>> publish_packet(b"a/b", 1, b"hi").hex()
        '32090003612f6200016869'
    """
    body_length = 2 + len(topic) + 2 + len(payload) + (1 if mqtt5 else 0)
    props = b"\x00" if mqtt5 else b""
    return b"".join(
        (
            b"\x32",
            _varint(body_length),
            len(topic).to_bytes(2, "big"),
            topic,
            mid.to_bytes(2, "big"),
            props,
            payload,
        )
    )


def _fresh_in_packet() -> Any:
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


class FastClient(mqtt.Client):
    """A paho `Client` whose QoS 1 messages take the batched path (see the module docstring).

    Args:
        *args: as paho's ``Client``.
        on_fast_message: receives every QoS 1 PUBLISH as ``(topic, mid, dup, payload)``;
            with ``manual_ack`` the caller acknowledges with `ack_many`. Other QoS levels go
            to paho's ``on_message`` as usual.
        **kwargs: as paho's ``Client``.

    Attributes:
        recvs: ``recv`` calls that returned data.
        packets: packets read.
    """

    def __init__(
        self,
        *args: Any,
        on_fast_message: FastMessageCallback | None = None,
        on_fast_puback: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        check_paho()
        super().__init__(*args, **kwargs)
        self._on_fast = on_fast_message
        self._on_puback = on_fast_puback
        #: Packet id -> PUBLISH packet, for what `publish_many` sent and is not acknowledged.
        self.unacked: dict[int, bytes] = {}
        self._next_mid = 0
        self._rbuf = bytearray()
        self._mqtt5 = self._protocol == mqtt.MQTTv5
        self.recvs = 0
        self.packets = 0

    def _create_socket(self) -> Any:
        self._rbuf = bytearray()  # a new connection starts a new byte stream
        return super()._create_socket()

    def ack_many(self, mids: Sequence[int]) -> None:
        """Queue the PUBACKs of ``mids`` (in this order) as one write; thread-safe."""
        if mids:
            self._packet_queue(_PUBACK, pack_pubacks(mids), 0, 0)

    def publish_many(self, topics: Sequence[bytes], payloads: Sequence[bytes]) -> int:
        """Queue QoS 1 PUBLISH packets for ``topics[i]``/``payloads[i]`` as one write.

        Their PUBACKs go to ``on_fast_puback``. Packet ids skip those still unacknowledged;
        the caller keeps fewer than 65,535 in flight. Returns the number queued.
        """
        unacked = self.unacked
        if len(unacked) + len(payloads) >= 65535:
            raise ValueError("more than 65,534 QoS 1 messages would be in flight")
        mqtt5 = self._mqtt5
        mid = self._next_mid
        packets = []
        for topic, payload in zip(topics, payloads, strict=True):
            mid = mid % 65535 + 1
            while mid in unacked:
                mid = mid % 65535 + 1
            packet = publish_packet(topic, mid, payload, mqtt5=mqtt5)
            unacked[mid] = packet
            packets.append(packet)
        self._next_mid = mid
        if packets:
            self._packet_queue(_PUBLISH | 0x02, b"".join(packets), 0, 1)  # qos 1: no info
        return len(packets)

    def resend(self) -> int:
        """Queue every unacknowledged PUBLISH again, flagged DUP (after a reconnect)."""
        pending = list(self.unacked.values())  # one C call: safe against concurrent inserts
        packets = [bytes((packet[0] | 0x08,)) + packet[1:] for packet in pending]
        if packets:
            self._packet_queue(_PUBLISH | 0x0A, b"".join(packets), 0, 1)
        return len(packets)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read what the socket has and handle every complete packet (``max_packets`` unused)."""
        del max_packets
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        rc = self._packet_read()
        if rc > 0:
            return self._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_read(self) -> MQTTErrorCode:
        handled = 0
        try:
            while True:
                rc, count = self._handle_buffered()
                handled += count
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None:
                    return rc
                if handled >= MAX_PACKETS_PER_READ:
                    return MQTTErrorCode.MQTT_ERR_SUCCESS  # the rest is still in the socket
                try:
                    data = self._sock_recv(RECV_BYTES)
                except BlockingIOError:
                    return MQTTErrorCode.MQTT_ERR_AGAIN
                except (OSError, ConnectionError):
                    return MQTTErrorCode.MQTT_ERR_CONN_LOST
                if not data:
                    return MQTTErrorCode.MQTT_ERR_CONN_LOST
                self.recvs += 1
                self._rbuf += data
        finally:
            if handled:
                self.packets += handled
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()

    def _handle_buffered(self) -> tuple[MQTTErrorCode, int]:
        """Handle every complete packet in the buffer; keep the incomplete rest."""
        buf = self._rbuf
        size = len(buf)
        pos = 0
        count = 0
        on_fast = self._on_fast
        on_puback = self._on_puback
        unacked = self.unacked
        mqtt5 = self._mqtt5
        manual_ack = self._manual_ack and on_fast is not None
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while size - pos >= 2:
            command = buf[pos]
            length = 0
            shift = 0
            i = pos + 1
            complete = False
            while i < size:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL, count
            if not complete:
                break  # the remaining length itself is incomplete
            end = i + length
            if end > size:
                break
            if command & 0xF0 == _PUBLISH and (command & 0x06) == 0x02 and manual_ack:
                topic_len = (buf[i] << 8) | buf[i + 1]
                j = i + 2 + topic_len
                topic = bytes(buf[i + 2 : j])
                mid = (buf[j] << 8) | buf[j + 1]
                j += 2
                if mqtt5:  # skip the properties (a varint length, then that many bytes)
                    props = 0
                    shift = 0
                    while True:
                        byte = buf[j]
                        j += 1
                        props |= (byte & 0x7F) << shift
                        if not byte & 0x80:
                            break
                        shift += 7
                    j += props
                try:
                    name = topic.decode()
                except UnicodeDecodeError:
                    name = ""  # no key can come of it; forwarded like any message
                on_fast(name, mid, bool(command & 0x08), bytes(buf[j:end]))  # type: ignore[misc]
            elif command == _PUBACK and on_puback is not None and length >= 2:
                mid = (buf[i] << 8) | buf[i + 1]
                if unacked.pop(mid, None) is not None:
                    on_puback(mid)
            else:
                self._in_packet = _fresh_in_packet()
                self._in_packet["command"] = command
                self._in_packet["packet"] = bytearray(buf[i:end])
                try:
                    rc = self._packet_handle()
                except MalformedPacket:
                    rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                self._in_packet = _fresh_in_packet()
            pos = end
            count += 1
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None:
                break
        if pos:
            del buf[:pos]
        return rc, count
