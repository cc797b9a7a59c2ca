"""The pure core of the preprocess stage: raw records in, clean values or verdicts out.

`Preprocessor.process` validates, filters and encodes a batch: ``bytes`` for the clean topic
(the `lakeless.schema.CleanCodec` layout), a `Rejection` for the dead-letter topic (see
`lakeless.preprocess.dlq`), `FILTERED` for a valid record the ``--where`` expression drops.
`PreprocessStep` turns a consumed batch into those outputs for `lakeless.kafka.BatchLoop`.

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.schema import EventCodec
    >>> schema = car_fleet()
    >>> pre = Preprocessor(schema, where="speed > 30")
    >>> good = EventCodec(schema).encode(schema.example(ts=1_700_000_000_000))
    >>> pre.process([good, b"[]"], now_ms=1_700_000_000_000)
    [<Filtered.FILTERED: 'filtered'>, Rejection(reason=<Reason.NOT_AN_OBJECT: 'not_an_object'>, \
detail='expected a JSON object, got an array', field=None)]
    >>> pre.stats.to_dict()["balanced"]
    True
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from lakeless.kafka import BaseStep, BatchResult, Output
from lakeless.pipeline import Pipeline
from lakeless.preprocess.dlq import dead_letter
from lakeless.preprocess.stats import PreprocessStats
from lakeless.preprocess.validate import Rejection, Validator
from lakeless.preprocess.where import Filter, compile_filter
from lakeless.schema import CleanCodec, PipelineSchema

__all__ = ["FILTERED", "Filtered", "Outcome", "PreprocessStep", "Preprocessor"]


class Filtered(enum.Enum):
    """Marker for a valid record that the filter expression dropped."""

    FILTERED = "filtered"


FILTERED: Final = Filtered.FILTERED
#: What happens to one record: clean value, dead-letter verdict, or filtered out.
Outcome = bytes | Rejection | Filtered


class Preprocessor:
    """Validates, filters and encodes batches of one schema, keeping `stats`.

    Args:
        schema: the pipeline schema.
        validator: the validation rules (default `Validator(schema)`).
        where: an optional filter expression or compiled `Filter`.
    """

    def __init__(
        self,
        schema: PipelineSchema,
        validator: Validator | None = None,
        where: str | Filter | None = None,
    ) -> None:
        self.schema = schema
        self.validator = validator or Validator(schema)
        self.where = compile_filter(where, schema) if isinstance(where, str) else where
        self.codec = CleanCodec(schema)
        self.stats = PreprocessStats()

    def process(
        self,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        timestamps: Sequence[int | None] | None = None,
        *,
        now_ms: int | None = None,
    ) -> list[Outcome]:
        """One outcome per value, in order; arguments as in `Validator.validate_batch`."""
        results = self.validator.validate_batch(values, keys, timestamps, now_ms=now_ms)
        where = self.where
        encode = self.codec.encode
        stats = self.stats
        out: list[Outcome] = []
        for result in results:
            if isinstance(result, Rejection):
                stats.count_rejection(result.reason.value)
                out.append(result)
            elif where is not None and not where(result):
                stats.filtered += 1
                out.append(FILTERED)
            else:
                stats.clean += 1
                out.append(encode(result))
        stats.received += len(values)
        return out


class PreprocessStep(BaseStep):
    """The preprocess stage's step: raw records -> clean records and dead letters.

    Clean records keep the input's key (the entity id; taken from the event when the input
    has none) and record timestamp; dead letters keep key, value and headers byte for byte,
    with ``lakeless.*`` headers appended, and are stamped now (the DLQ's retention counts
    from the rejection; the source timestamp travels in a header).

    Args:
        pipeline: the pipeline (topics, schema).
        preprocessor: the validation rules and filter.
        time_reference: ``record`` (event-time checks against the record timestamp, capped at
            the wall clock) or ``wall_clock``.
        stats: where committed batches are counted (the loop counts the common fields).
    """

    name = "preprocess"

    def __init__(
        self,
        pipeline: Pipeline,
        preprocessor: Preprocessor,
        time_reference: str = "record",
        stats: PreprocessStats | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.preprocessor = preprocessor
        self.time_reference = time_reference
        self.stats = stats if stats is not None else PreprocessStats()
        self._key_position = pipeline.schema.field_names.index(pipeline.schema.key)

    def process(self, messages: list[Message]) -> BatchResult:
        """Validate, filter and encode one batch (see the class docstring)."""
        values = [m.value() for m in messages]
        keys = [m.key() for m in messages]
        timestamps = None  # the wall clock is the reference time
        if self.time_reference == "record":
            timestamps = [m.timestamp()[1] for m in messages]  # -1 (none): the wall clock
        pre = self.preprocessor
        pre.stats = batch = PreprocessStats()
        outcomes = pre.process(values, keys, timestamps)
        topics = self.pipeline.topics
        clean, dlq = topics.clean, topics.dlq
        key_field = self.pipeline.schema.key
        outputs: list[Output] = []
        append = outputs.append
        for message, key, outcome in zip(messages, keys, outcomes, strict=True):
            if isinstance(outcome, bytes):
                if key is None:  # a present key equals the entity id: the validator checked
                    key = _entity(pre, message, key_field)
                # -1 (not available) becomes 0: the producer stamps the record now.
                append((clean, outcome, key, max(message.timestamp()[1], 0), None))
            elif isinstance(outcome, Rejection):
                kind, timestamp = message.timestamp()
                letter = dead_letter(
                    outcome,
                    value=message.value(),
                    key=key,
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                    timestamp=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
                    headers=message.headers(),
                )
                append((dlq, letter.value, letter.key, 0, list(letter.headers)))  # type: ignore[arg-type]
        return BatchResult(
            outputs, dead_lettered=batch.dead_lettered, filtered=batch.filtered, payload=batch
        )

    def committed(self, result: BatchResult, n: int) -> None:
        """Count a committed batch."""
        batch: PreprocessStats = result.payload
        self.stats.clean += batch.clean
        self.stats.by_reason.update(batch.by_reason)


def _entity(pre: Preprocessor, message: Message, key_field: str) -> bytes:
    event = pre.validator.events.decode(message.value())
    entity: str = getattr(event, key_field)
    return entity.encode()
