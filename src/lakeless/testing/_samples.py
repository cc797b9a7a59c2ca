"""Values and events a pipeline schema allows: the good half of `lakeless.testing.corpus`."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from lakeless.examples import car_fleet
from lakeless.schema import FieldSpec, PipelineSchema

__all__ = ["good_event", "good_record"]

DAY_MS: Final = 86_400_000
INT64_MAX: Final = 2**63 - 1
#: What the default validator accepts (`lakeless.preprocess.PreprocessSettings` defaults).
MAX_BYTES: Final = 64 * 1024
MAX_FUTURE_MS: Final = 5 * 60 * 1000
MIN_TS_MS: Final = 946_684_800_000
#: 2019-01-01: recorded data of that age must stay importable.
RECORDED_TS: Final = 1_546_300_800_000
_STRING_CANDIDATES: Final = ("example-1", "a", "A", "x", "0", "1", "a1", "A1")

Item = tuple[str, bytes]


def now_ms() -> int:
    return int(time.time() * 1000)


def schema_or_default(schema: PipelineSchema | None) -> PipelineSchema:
    return schema if schema is not None else car_fleet()


# ---- JSON at the token level: any value, including what `json` would never write -----------


def json_token(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def json_object(items: Iterable[tuple[str, bytes]]) -> bytes:
    return b"{" + b",".join(json_token(name) + b":" + token for name, token in items) + b"}"


def dump(event: dict[str, Any]) -> bytes:
    return json_object((name, json_token(value)) for name, value in event.items())


# ---- what the schema allows -------------------------------------------------------------------


def valid_string(spec: FieldSpec, text: str) -> bool:
    """Whether ``text`` is a valid value of string field ``spec`` (the contract's rules)."""
    if spec.symbols is not None:
        return text in spec.symbols
    if len(text) < spec.min_length or len(text.encode()) > spec.max_length:
        return False
    return spec.pattern is None or re.fullmatch(spec.pattern, text) is not None


def good_string(spec: FieldSpec, avoid: Sequence[str] = ()) -> str | None:
    """A valid value of ``spec`` not in ``avoid``: its example, its default, or a plain one."""
    candidates = [spec.example, spec.default, *(spec.symbols or ()), *_STRING_CANDIDATES]
    candidates += [f"{text}2" for text in avoid if isinstance(text, str)]
    if spec.pattern is not None:
        candidates += _pattern_samples(spec.pattern)
    for text in candidates:
        if isinstance(text, str) and text not in avoid and valid_string(spec, text):
            return text
    return None


def _pattern_samples(pattern: str) -> list[str]:
    """Strings that match ``pattern`` as a whole, for a field without an example.

    Built from the parsed regular expression (literals, classes, repeats, groups and
    alternatives), with each repeat taken a few different numbers of times; assertions and
    back references are ignored, so a sample may not match (callers check).
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        tree = _parser.parse(pattern)
    except Exception:  # a private module: no sample is an answer too
        return []
    samples = []
    for extra in (0, 1, 2, 5):
        with contextlib.suppress(ValueError, RecursionError):
            samples.append(_sample(tree, extra))
    return samples


def _sample(tree: Any, extra: int) -> str:
    from re import _constants as c  # type: ignore[attr-defined]

    out = []
    for op, arg in tree:
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is c.ANY:
            out.append("a")
        elif op is c.IN:
            out.append(_one_of(arg))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, sub = arg
            count = low + extra if high is c.MAXREPEAT else min(high, low + extra)
            out.append(_sample(sub, extra) * count)
        elif op is c.SUBPATTERN:
            out.append(_sample(arg[-1], extra))
        elif op is c.ATOMIC_GROUP:
            out.append(_sample(arg, extra))
        elif op is c.BRANCH:
            out.append(_sample(arg[1][0], extra))
        elif op not in (c.AT, c.ASSERT, c.ASSERT_NOT):
            raise ValueError(f"no sample for {op}")
    return "".join(out)


def _one_of(items: Any) -> str:
    from re import _constants as c  # type: ignore[attr-defined]

    negate = bool(items) and items[0][0] is c.NEGATE
    allowed: list[str] = []
    denied: set[str] = set()
    categories = {
        c.CATEGORY_DIGIT: "0123456789",
        c.CATEGORY_WORD: "a0_",
        c.CATEGORY_SPACE: " ",
        c.CATEGORY_NOT_DIGIT: "a",
        c.CATEGORY_NOT_WORD: "-",
        c.CATEGORY_NOT_SPACE: "a",
    }
    for op, arg in items[1:] if negate else items:
        if op is c.LITERAL:
            chars = chr(arg)
        elif op is c.RANGE:
            chars = "".join(chr(code) for code in range(arg[0], min(arg[1], arg[0] + 40) + 1))
        elif op is c.CATEGORY:
            chars = categories.get(arg, "")
        else:
            raise ValueError(f"no sample for {op}")
        allowed += chars
        denied.update(chars)
    if negate:
        for char in "aA0_-x.":
            if char not in denied:
                return char
        raise ValueError("no character outside the class")
    if not allowed:
        raise ValueError("an empty class")
    return allowed[0]


def declared(schema: PipelineSchema, spec: FieldSpec, bound: str) -> bool:
    """Whether the schema file itself gives ``bound`` (``min``/``max``) for ``spec``."""
    for raw in schema.raw.get("fields", []):
        if raw.get("name") == spec.name:
            return raw.get(bound) is not None
    return False


def time_bounds(schema: PipelineSchema) -> tuple[int, int]:
    spec = schema.field(schema.time)
    low = 0 if spec.min is None else max(0, int(spec.min))
    high = INT64_MAX if spec.max is None else min(INT64_MAX, int(spec.max))
    return low, high


def _good_number(spec: FieldSpec) -> int | float | bool:
    if spec.type == "boolean":
        return bool(spec.example) if isinstance(spec.example, bool) else False
    value = spec.example
    low = -math.inf if spec.min is None else spec.min
    high = math.inf if spec.max is None else spec.max
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        value = spec.default if isinstance(spec.default, int | float) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        value = 0 if low <= 0 <= high else (low if math.isfinite(low) else high)
    return int(value) if spec.integer else float(value)


def good_event(schema: PipelineSchema | None = None, **fields: Any) -> dict[str, Any]:
    """A valid event of ``schema`` as a dict, in schema order, event time now.

    Every field is there (optional ones with their example or default, the label null);
    ``fields`` override values (anything, including values of the wrong type).

    Raises:
        ValueError: the schema leaves no valid value to pick for a field (give it an
            ``example``), or its time field cannot hold today's time in milliseconds.
    """
    schema = schema_or_default(schema)
    now = now_ms()
    low, high = time_bounds(schema)
    if not low <= now <= high:
        raise ValueError(
            f"the time field {schema.time!r} cannot hold the current time in ms ({now}): the "
            "corpus needs a long time field"
        )
    event: dict[str, Any] = {}
    for spec in schema.fields:
        if spec.name == schema.time:
            event[spec.name] = now
        elif spec.name == schema.sequence:
            event[spec.name] = max(0, int(spec.min or 0))
        elif spec.name == schema.label:
            event[spec.name] = None if spec.nullable else good_string(spec)
        elif spec.string:
            text = good_string(spec)
            if text is None and not spec.nullable:
                raise ValueError(f"no valid value found for field {spec.name!r}: add an example")
            event[spec.name] = text
        else:
            event[spec.name] = _good_number(spec)
    event.update(fields)
    return event


def good_record(schema: PipelineSchema | None = None, **fields: Any) -> bytes:
    """A valid raw record of ``schema`` (compact JSON); see `good_event`."""
    return dump(good_event(schema, **fields))
