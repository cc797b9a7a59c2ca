"""Consuming in batches: records apart from consumer errors, errors handled one way everywhere."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, Message, TopicPartition

from lakeless.errors import LakelessError

logger = logging.getLogger(__name__)


class ConsumeErrors:
    """Separates records from consumer errors for one stage.

    A fatal error raises ``error_type``; partition EOF is ignored; any other error (a missing
    topic, a broker going away) is logged at most every ``log_interval`` seconds per error code,
    and the stage keeps consuming, since librdkafka retries by itself.

    Attributes:
        seen: an error was reported (e.g. a missing topic): waiting longer for a group
            assignment would not help, so stages start their idle clock.
    """

    def __init__(self, error_type: type[LakelessError], log_interval: float = 10.0) -> None:
        self.error_type = error_type
        self.log_interval = log_interval
        self.seen = False
        self._logged: dict[int, float] = {}

    def consume(self, consumer: Any, wanted: int, timeout: float) -> list[Message]:
        """Up to ``wanted`` records from ``consumer.consume``, errors handled."""
        try:
            messages: list[Message] = consumer.consume(num_messages=wanted, timeout=timeout)
        except KafkaException as exc:
            raise self.error_type(f"consuming failed: {exc}") from exc
        return self.records(messages)

    def records(self, messages: list[Message]) -> list[Message]:
        """The messages that are records; errors among them are handled."""
        good = [m for m in messages if m.error() is None]
        if len(good) != len(messages):
            for message in messages:
                if (error := message.error()) is not None:
                    self._handle(error, message)
        return good

    def _handle(self, error: ConfluentError, message: Message) -> None:
        if error.fatal():
            raise self.error_type(f"fatal consumer error: {error.str()}")
        if error.code() in _MISCONFIGURED:  # retrying cannot help: say so now
            raise self.error_type(f"consumer misconfigured: {error.str()}")
        self.seen = True
        code = error.code()
        if code == ConfluentError._PARTITION_EOF:
            return
        now = time.monotonic()
        last = self._logged.get(code)
        if last is None or now - last >= self.log_interval:
            self._logged[code] = now
            logger.warning("consumer error on %s (retrying): %s", message.topic(), error.str())


#: Consumer errors that retrying never fixes.
_MISCONFIGURED = frozenset(
    {
        ConfluentError.INVALID_SESSION_TIMEOUT,
        ConfluentError.INVALID_CONFIG,
        ConfluentError.INVALID_GROUP_ID,
    }
)


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after ``messages``: last offset + 1 per topic partition."""
    last: dict[tuple[str, int], int] = {}
    for message in messages:
        last[(message.topic(), message.partition())] = message.offset()
    return [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]
