"""How the batch loop stays in its group while it is not consuming: pause, poll, resume.

A member that does not poll for ``max.poll.interval.ms`` is thrown out of its group. While the
loop waits (for a step that is not ready, for slow acknowledgements), it pauses its assigned
partitions and keeps polling; records that were already buffered are kept for the next
batch, never lost. `Liveness` is the part of `lakeless.kafka.BatchLoop` that does it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from confluent_kafka import KafkaException, Message, TopicPartition

from lakeless.errors import KafkaError
from lakeless.kafka._stats import StageMetrics

__all__ = ["Liveness"]


class Liveness:
    """Pausing, polling while paused, resuming, and forgetting revoked partitions."""

    _consumer: Any
    _paused: list[TopicPartition]
    _carry: list[Message]
    error_type: type[KafkaError]
    metrics: StageMetrics

    def _good(self, messages: list[Message]) -> list[Message]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _assignment(self) -> list[TopicPartition]:
        try:
            return list(self._consumer.assignment())
        except KafkaException:
            return []

    def _hold(self, timeout: float) -> None:
        """Keep the group membership while not consuming: partitions paused, consumer polled."""
        self._pause()
        self._poll_paused(timeout)

    def _keep_alive(self) -> None:
        self._pause()
        self._poll_paused(0)

    def _pause(self) -> None:
        new = [tp for tp in self._assignment() if tp not in self._paused]
        if new:
            self._consumer.pause(new)
            self._paused += new

    def _poll_paused(self, timeout: float) -> None:
        try:
            messages = self._consumer.consume(num_messages=1000, timeout=timeout)
        except KafkaException as exc:
            raise self.error_type(f"consuming failed: {exc}") from exc
        # Paused partitions return nothing new; anything already buffered is kept, not lost.
        self._carry += self._good(messages)

    def _release(self) -> None:
        if self._paused:
            assigned = set(self._assignment())
            paused = [tp for tp in self._paused if tp in assigned]
            if paused:
                self._consumer.resume(paused)
            self._paused = []

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._carry = [m for m in self._carry if (m.topic(), m.partition()) not in gone]
        self._paused = [tp for tp in self._paused if (tp.topic, tp.partition) not in gone]
        for topic, partition in gone:
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(topic, str(partition))
