"""`lakeless._mqtt.FastClient`'s batched read path and packet builders, over a socket pair."""

from __future__ import annotations

import socket
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from lakeless._mqtt import FastClient, pack_pubacks, publish_packet


def _client(**callbacks: Any) -> tuple[FastClient, socket.socket]:
    client = FastClient(
        CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True,
        **callbacks,
    )  # fmt: skip
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    return client, theirs


def test_publishes_split_anywhere_arrive_whole_and_in_order() -> None:
    seen: list[tuple[str, int, bool, bytes]] = []
    client, peer = _client(on_fast_message=lambda *m: seen.append(m))
    packets = b"".join(
        publish_packet(f"v/car-{i}/s".encode(), i + 1, b"x" * (i * 50), mqtt5=True)
        for i in range(40)
    )
    for cut in (1, 2, 3, 700, len(packets)):  # partial headers and bodies in between
        peer.sendall(packets[:cut])
        assert client._packet_read() in (
            MQTTErrorCode.MQTT_ERR_AGAIN,
            MQTTErrorCode.MQTT_ERR_SUCCESS,
        )
        packets = packets[cut:]
        if not packets:
            break
    assert [(t, mid, len(p)) for t, mid, _d, p in seen] == [
        (f"v/car-{i}/s", i + 1, i * 50) for i in range(40)
    ]
    assert client.packets == 40


def test_pubacks_count_once_and_other_packets_go_to_paho() -> None:
    acked: list[int] = []
    client, peer = _client(on_fast_puback=acked.append)
    client.unacked = {7: b"p7", 8: b"p8"}
    pings: list[bool] = []
    client._handle_pingresp = lambda: pings.append(True) or MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
    peer.sendall(pack_pubacks([7, 7, 9]) + b"\xd0\x00" + pack_pubacks([8]))
    client._packet_read()
    assert acked == [7, 8] and client.unacked == {} and pings == [True]


def test_publish_many_numbers_packets_and_resend_flags_dup() -> None:
    client, peer = _client()
    client.unacked = {1: b"old"}
    assert client.publish_many([b"a", b"b"], [b"1", b"2"]) == 2
    assert sorted(client.unacked) == [1, 2, 3]  # id 1 is still in flight: skipped
    assert client.unacked[2] == publish_packet(b"a", 2, b"1", mqtt5=True)
    client.unacked = {2: client.unacked[2]}
    assert client.resend() == 1
    written = peer.recv(65536)  # with no network thread, paho writes at once
    dup = bytes((0x3A,)) + client.unacked[2][1:]
    assert written.endswith(dup) and written.startswith(client.unacked[2])


def test_a_closed_peer_is_a_lost_connection() -> None:
    client, peer = _client(on_fast_message=lambda *m: None)
    peer.close()
    assert client._packet_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST
