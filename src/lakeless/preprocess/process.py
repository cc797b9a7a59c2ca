"""The pure core of the preprocess stage: raw values in, clean values or verdicts out.

The Kafka loop feeds each consumed batch to `Preprocessor.process` and produces what comes back:
``bytes`` to ``sensor-clean`` (the `lakeless.schema.encode_clean` encoding), a `Rejection` to
``sensor-dlq`` (see `lakeless.preprocess.dlq`), nothing for `FILTERED`.

Example:
    >>> from lakeless.schema import make_example_json
    >>> pre = Preprocessor(where="speed > 30")
    >>> pre.process([make_example_json(), b"[]"])
    [<Filtered.FILTERED: 'filtered'>, Rejection(reason=<Reason.NOT_AN_OBJECT: 'not_an_object'>, \
detail='Expected `object`, got `array`', field=None)]
    >>> pre.stats.to_dict()["balanced"]
    True
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from lakeless.preprocess.stats import PreprocessStats
from lakeless.preprocess.validate import Rejection, Validator
from lakeless.preprocess.where import Filter, compile_filter
from lakeless.schema import encode_clean

__all__ = ["FILTERED", "Filtered", "Outcome", "Preprocessor"]


class Filtered(enum.Enum):
    """Marker for a valid record that the filter expression dropped."""

    FILTERED = "filtered"


FILTERED: Final = Filtered.FILTERED
#: What happens to one record: clean value, dead-letter verdict, or filtered out.
Outcome = bytes | Rejection | Filtered


class Preprocessor:
    """Validates, filters and encodes batches, keeping `stats`.

    Args:
        validator: the validation rules (default `Validator()`).
        where: an optional filter expression or compiled `Filter`.
    """

    def __init__(
        self, validator: Validator | None = None, where: str | Filter | None = None
    ) -> None:
        self.validator = validator or Validator()
        self.where = compile_filter(where) if isinstance(where, str) else where
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
        stats = self.stats
        out: list[Outcome] = []
        for result in results:
            if isinstance(result, Rejection):
                stats.dead_lettered[result.reason.value] += 1
                out.append(result)
            elif where is not None and not where(result):
                stats.filtered += 1
                out.append(FILTERED)
            else:
                stats.clean += 1
                out.append(encode_clean(result))
        stats.received += len(values)
        return out
