"""The ``preprocess`` stage: ``NAME.raw`` in, ``NAME.clean`` and ``NAME.dlq`` out.

Every raw record is validated against the pipeline's schema (`Validator`), optionally
filtered by a KSQL-like ``WHERE`` expression (`compile_filter`), and either encoded for the
clean topic or dead-lettered with a reason code (`dead_letter`). `PreprocessStats` counts
every record once, so nothing is dropped silently. `PreprocessStage` runs `PreprocessStep` in
the one batch loop of `lakeless.kafka` (consume a batch, process, produce, wait for
acknowledgements, commit).

Reason codes (`Reason`, the ``lakeless.reason`` header of a dead-lettered record):

=================  ==========================================================================
code               meaning
=================  ==========================================================================
empty              tombstone, empty or whitespace-only value
too_large          value longer than ``max_bytes`` (64 KiB by default)
not_utf8           bytes that are not valid UTF-8
invalid_json       not JSON: malformed, truncated, trailing bytes, byte-order mark
not_an_object      JSON whose top level is an array, string, number, bool or null
missing_field      a required field (one without a default) is absent
unknown_field      a field the schema does not define
duplicate_field    a key appears twice
wrong_type         wrong JSON type: string/bool/null for a number, float for an integer, ...
not_finite         ``NaN``/``Infinity`` token, or a number overflowing float64 (``1e999``)
out_of_range       outside the declared range (``min``/``max``); negative time or sequence
invalid_key        the key field empty, too long or not matching its pattern
invalid_string     another string field too short, too long (UTF-8 bytes), off its pattern
                   or not a symbol of its enum
ts_in_future       event time ahead of the reference time by more than ``max_future_ms``
ts_too_old         event time before ``min_ts_ms`` (2000-01-01) or older than ``max_age_ms``
key_mismatch       record key present and not equal to the key field
schema_violation   any other schema violation
=================  ==========================================================================
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.preprocess._settings import PreprocessSettings

if TYPE_CHECKING:
    from lakeless.preprocess._stage import PreprocessError, PreprocessStage, run_preprocess
    from lakeless.preprocess.dlq import (
        DeadLetter,
        dead_letter,
        dead_letter_headers,
        read_dead_letter,
    )
    from lakeless.preprocess.process import (
        FILTERED,
        Filtered,
        Outcome,
        Preprocessor,
        PreprocessStep,
    )
    from lakeless.preprocess.stats import PreprocessStats
    from lakeless.preprocess.validate import Reason, Rejection, Validator
    from lakeless.preprocess.where import Filter, FilterError, compile_filter

__all__ = [
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
    "PreprocessStep",
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

__getattr__ = lazy_attributes(
    __name__,
    {
        "._stage": ["PreprocessError", "PreprocessStage", "run_preprocess"],
        ".dlq": ["DeadLetter", "dead_letter", "dead_letter_headers", "read_dead_letter"],
        ".process": ["FILTERED", "Filtered", "Outcome", "PreprocessStep", "Preprocessor"],
        ".stats": ["PreprocessStats"],
        ".validate": ["Reason", "Rejection", "Validator"],
        ".where": ["Filter", "FilterError", "compile_filter"],
    },
)
