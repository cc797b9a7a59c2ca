"""The validator's per-record fast check, generated for one schema.

`compile_fast_check` writes a small function that names the schema's fields directly (as the
hand-written car-fleet check used to), so that a good record pays for a few attribute reads,
comparisons and two scans of its bytes, and nothing per field for the loop around them. The
generated source holds no text of the schema other than field names that are Python
identifiers (others are read with `getattr` through a constant); defaults, byte patterns and
limits are constants of its namespace, never spliced into the source.

The function is a necessary condition: ``False`` proves that the decoded event has no
duplicate key, no string over its limit in UTF-8 bytes, an event time within ``[low, high]``
and (when given) a record key equal to its key field; ``True`` sends the record to the exact
check. Why the quote count proves "no duplicate key": every key and every string value of a
JSON object brings two quotes, and only escaped quotes add more; the expected count below is
exact for the fields an event has, or lower (a field whose key is written with escapes is not
seen); so the actual count equals it only when no key repeats.

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.schema import EventCodec
    >>> schema = car_fleet()
    >>> codec = EventCodec(schema)
    >>> suspect = compile_fast_check(schema, check_duplicates=True)
    >>> raw = codec.encode(schema.example())
    >>> event = codec.decode(raw)
    >>> suspect(raw, event, 0, 2**63 - 1, None), suspect(raw, event, 0, 10, None)
    (False, True)
    >>> suspect(raw[:-1] + b',"speed":1.0}', event, 0, 2**63 - 1, None)
    True
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from typing import Any

from lakeless.schema import FieldSpec, PipelineSchema

__all__ = ["FastCheck", "compile_fast_check"]

#: ``(value, event, low, high, key) -> suspect``.
FastCheck = Callable[[bytes, Any, int, int, "bytes | None"], bool]


def compile_fast_check(schema: PipelineSchema, *, check_duplicates: bool) -> FastCheck:
    """The generated fast check of ``schema`` (see the module docstring)."""
    namespace: dict[str, Any] = {}
    lines = ["def suspect(value, event, low, high, key):"]

    def constant(value: Any) -> str:
        name = f"_c{len(namespace)}"
        namespace[name] = value
        return name

    def read(spec: FieldSpec) -> str:
        if spec.name.isidentifier() and not keyword.iskeyword(spec.name):
            return f"event.{spec.name}"
        return f"getattr(event, {constant(spec.name)})"

    lines += [
        f"    ts = {read(schema.field(schema.time))}",
        "    if ts > high or ts < low:",
        "        return True",
    ]
    # Strings: locals s<i>; ASCII strings are as long in bytes as msgspec counted in characters.
    strings = [spec for spec in schema.fields if spec.string]
    local = {spec.name: f"s{i}" for i, spec in enumerate(strings)}
    tests = []
    for spec in strings:
        lines.append(f"    {local[spec.name]} = {read(spec)}")
        if spec.symbols is None:  # enum symbols are Avro names: ASCII
            text = local[spec.name]
            ascii_ = f"{text}.isascii()"
            tests.append(f"({text} is None or {ascii_})" if spec.nullable else ascii_)
    if tests:
        lines += [
            f"    if not ({' and '.join(tests)}) and {constant(_over_limit(strings))}(event):",
            "        return True",
        ]
    if check_duplicates:
        base = 0
        presence = []
        for spec in schema.fields:
            value = local.get(spec.name) or read(spec)
            quotes = f"(4 if {value} is not None else 2)" if spec.string else "2"
            if not spec.has_default:
                base += 2
                if spec.string and not spec.nullable:
                    base += 2
                elif spec.string:
                    presence.append(f"    if {value} is not None:\n        quotes += 2")
                continue
            compact = constant(f'"{spec.name}":'.encode())
            loose = constant(re.compile(rb'"' + re.escape(spec.name.encode()) + rb'"\s*:').search)
            # A key in the bytes is `"name"` and a colon, maybe after whitespace (a string
            # value is never followed by a colon). Encoders that write fields in schema order
            # put the optional ones last, so the compact key is looked for from the end.
            presence.append(
                f"    if {value} != {constant(spec.default)} or value.rfind({compact}) >= 0"
                f" or {loose}(value) is not None:\n        quotes += {quotes}"
            )
        lines.append(f"    quotes = {base}")
        lines += presence
        lines += ["    if value.count(b'\"') != quotes:", "        return True"]
    key = local[schema.key]
    lines.append(f"    return key is not None and key != {key}.encode()")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<fast check of {schema.name}>", "exec"), namespace)
    check: FastCheck = namespace["suspect"]
    check.__doc__ = source  # what was generated, for a reader in a debugger
    return check


def _over_limit(strings: list[FieldSpec]) -> Callable[[Any], bool]:
    """Whether a string of an event is longer in UTF-8 bytes than its field allows."""
    limits = [(spec.name, spec.max_length) for spec in strings if spec.symbols is None]

    def over(event: Any) -> bool:
        for name, limit in limits:
            text = getattr(event, name)
            if text is not None and not text.isascii() and len(text.encode()) > limit:
                return True
        return False

    return over
