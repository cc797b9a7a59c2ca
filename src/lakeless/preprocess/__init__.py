"""The ``preprocess`` stage: ``sensor-raw`` in, ``sensor-clean`` and ``sensor-dlq`` out.

Every raw record is validated against `lakeless.schema.SensorEvent` (`Validator`), optionally
filtered by a KSQL-like ``WHERE`` expression (`compile_filter`), and either encoded for
``sensor-clean`` or dead-lettered with a reason code (`dead_letter`). `PreprocessStats` counts
every record once, so nothing is dropped silently. `PreprocessStage` is the Kafka loop around
it (consume a batch, process, produce, wait for acknowledgements, commit); see
``lakeless.preprocess._stage`` for its delivery guarantee and rebalance behaviour.

Reason codes (`Reason`, the ``lakeless.reason`` header of a dead-lettered record):

=================  ==========================================================================
code               meaning
=================  ==========================================================================
empty              tombstone, empty or whitespace-only value
too_large          value longer than ``max_bytes`` (64 KiB by default)
not_utf8           bytes that are not valid UTF-8
invalid_json       not JSON: malformed, truncated, trailing bytes, byte-order mark
not_an_object      JSON whose top level is an array, string, number, bool or null
missing_field      a required field is absent
unknown_field      a field the schema does not define
duplicate_field    a key appears twice
wrong_type         wrong JSON type: string/bool/null for a number, float for ``ts``/``seq``, ...
not_finite         ``NaN``/``Infinity`` token, or a number overflowing float64 (``1e999``)
out_of_range       outside the physical range; negative ``seq``; ``ts`` beyond int64
invalid_car_id     ``car_id`` empty, longer than 64, not ``[A-Za-z0-9_.:-]+``
invalid_string     ``model``/``failure`` empty or longer than 64 UTF-8 bytes
ts_in_future       event time ahead of the reference time by more than ``max_future_ms``
ts_too_old         event time before ``min_ts_ms`` (2000-01-01) or older than ``max_age_ms``
key_mismatch       record key present and not equal to ``car_id``
schema_violation   any other schema violation (an unclassified ``msgspec`` message)
=================  ==========================================================================
"""

from lakeless.preprocess._stage import (
    DEFAULT_BATCH_SIZE,
    PreprocessError,
    PreprocessSettings,
    PreprocessStage,
    run_preprocess,
)
from lakeless.preprocess.dlq import DeadLetter, dead_letter, dead_letter_headers, read_dead_letter
from lakeless.preprocess.process import FILTERED, Filtered, Outcome, Preprocessor
from lakeless.preprocess.stats import PreprocessStats
from lakeless.preprocess.validate import Reason, Rejection, Validator
from lakeless.preprocess.where import Filter, FilterError, compile_filter

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FILTERED",
    "DeadLetter",
    "Filter",
    "FilterError",
    "Filtered",
    "Outcome",
    "PreprocessError",
    "PreprocessSettings",
    "PreprocessStage",
    "PreprocessStats",
    "Preprocessor",
    "Reason",
    "Rejection",
    "Validator",
    "compile_filter",
    "dead_letter",
    "dead_letter_headers",
    "read_dead_letter",
    "run_preprocess",
]
