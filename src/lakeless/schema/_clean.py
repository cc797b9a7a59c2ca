"""The ``NAME.clean`` binary layout (version 2), generated from a `PipelineSchema`.

This is the only module that knows the layout (``docs/data-contract.md`` §3)::

    u8 version (2) | 8 bytes schema fingerprint | int64 time | [int64 sequence] |
    float64 per feature | strings: key, context..., label (u16 length + UTF-8, 0xFFFF = null)

The numeric part has a fixed size per schema, so `Decoder` turns a whole batch into one numpy
structured array with a single ``frombuffer`` over the joined numeric parts, and the feature
matrix is one strided view of it. String tails are decoded once per distinct tail (a fleet has
few distinct key/context/label combinations) and memoised between batches.

Records written with an older registered version of the pipeline's schema decode with that
version's layout and are projected onto the reader's schema (added fields take their default).

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.schema import EventCodec
    >>> schema = car_fleet()
    >>> events, codec = EventCodec(schema), CleanCodec(schema)
    >>> value = codec.encode(events.decode(events.encode(schema.example(seq=7))))
    >>> batch = Decoder(schema).decode([value, value])
    >>> len(batch), batch.key, batch.numeric["seq"].tolist(), batch.features().shape
    (2, ['car-1', 'car-1'], [7, 7], (2, 18))
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured

from lakeless.schema._model import PipelineSchema

__all__ = [
    "LAYOUT_VERSION",
    "BadValue",
    "CleanBatch",
    "CleanCodec",
    "Decoder",
    "concat",
]

LAYOUT_VERSION: Final = 2
#: Version byte plus fingerprint.
HEADER: Final = 9
_LENGTH: Final = struct.Struct("<H")
_NULL: Final = 0xFFFF
_MEMO_LIMIT: Final = 1 << 16

Strings = tuple[str | None, ...]


class BadValue(Exception):
    """Record ``index`` of a batch is not a clean record of the schema, for ``reason``."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


def numeric_dtype(schema: PipelineSchema) -> np.dtype[Any]:
    """The structured dtype of a record's numeric part: time, sequence, features."""
    fields = [(schema.time, "<i8")]
    if schema.sequence is not None:
        fields.append((schema.sequence, "<i8"))
    fields += [(name, "<f8") for name in schema.feature_names]
    return np.dtype(fields)


@dataclass(frozen=True)
class CleanBatch:
    """Clean records decoded column-wise.

    Attributes:
        schema: the (reader's) pipeline schema.
        numeric: structured array: the time, the sequence (if any) and every feature.
        strings: per string field of `PipelineSchema.strings`, one value per record (empty
            lists when decoded without strings).
    """

    schema: PipelineSchema
    numeric: np.ndarray
    strings: Mapping[str, list[str | None]]

    def __len__(self) -> int:
        return len(self.numeric)

    @property
    def key(self) -> list[str]:
        """The entity id of every record."""
        return self.strings[self.schema.key]  # type: ignore[return-value]

    @property
    def label(self) -> list[str | None]:
        """The label of every record (all ``None`` when the schema has no label)."""
        if self.schema.label is None:
            return [None] * len(self)
        return self.strings[self.schema.label]

    @property
    def time(self) -> np.ndarray:
        """Event times, int64 ms."""
        return self.numeric[self.schema.time]

    @property
    def sequence(self) -> np.ndarray | None:
        """Per-entity counters (``None`` when the schema has no sequence)."""
        if self.schema.sequence is None:
            return None
        return self.numeric[self.schema.sequence]

    @property
    def position(self) -> np.ndarray:
        """What orders an entity's readings: the sequence, else the time."""
        sequence = self.sequence
        return self.time if sequence is None else sequence

    def features(
        self, dtype: type[np.floating[Any]] = np.float32, *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The ``(n, n_features)`` feature matrix, in one pass over the numeric part.

        With ``out`` (shape ``(n, n_features)``), the values are cast into it and it is returned.
        """
        # The feature fields (float64 side by side) as one strided 2-d view of the records,
        # cast (or copied) once: no contiguous copy of the whole numeric part first.
        names = list(self.schema.feature_names)
        if out is None:
            return structured_to_unstructured(self.numeric[names], dtype=dtype, copy=True)
        out[...] = structured_to_unstructured(self.numeric[names])
        return out

    def take(self, start: int, stop: int) -> CleanBatch:
        """Rows ``start:stop`` (the numbers are a view, not a copy)."""
        return CleanBatch(
            self.schema,
            self.numeric[start:stop],
            {name: values[start:stop] for name, values in self.strings.items()},
        )

    def select(self, rows: Sequence[int] | np.ndarray) -> CleanBatch:
        """The rows at ``rows``, in that order."""
        index = np.asarray(rows, dtype=np.intp)
        return CleanBatch(
            self.schema,
            self.numeric[index],
            {
                name: [values[i] for i in index.tolist()] if values else []
                for name, values in self.strings.items()
            },
        )

    def column(self, name: str) -> np.ndarray | list[str | None]:
        """One field's values by name: a numpy column, or a list of strings."""
        if name in self.strings:
            return self.strings[name]
        return self.numeric[name]


def empty_batch(schema: PipelineSchema) -> CleanBatch:
    """A batch of no records."""
    return CleanBatch(
        schema, np.empty(0, dtype=numeric_dtype(schema)), {n: [] for n in schema.strings}
    )


def concat(batches: Sequence[CleanBatch]) -> CleanBatch:
    """One batch from many of the same schema, in order."""
    if len(batches) == 1:
        return batches[0]
    if not batches:
        raise ValueError("concat needs at least one batch (use empty_batch)")
    schema = batches[0].schema
    strings: dict[str, list[str | None]] = {name: [] for name in batches[0].strings}
    for batch in batches:
        for name, values in batch.strings.items():
            strings[name] += values
    return CleanBatch(schema, np.concatenate([b.numeric for b in batches]), strings)


class CleanCodec:
    """Encodes events of one schema in the clean layout.

    Attributes:
        schema: the pipeline schema.
        header: the 9 bytes every record starts with (version and fingerprint).
        dtype: the numeric part's structured dtype.
        head: bytes before the strings (header plus numeric part).
    """

    def __init__(self, schema: PipelineSchema) -> None:
        from lakeless.schema._events import EventCodec

        self.schema = schema
        self.header = bytes((LAYOUT_VERSION,)) + schema.fingerprint
        self.dtype = numeric_dtype(schema)
        self.head = HEADER + self.dtype.itemsize
        order = EventCodec(schema).order
        index = {name: order[i] for i, name in enumerate(schema.field_names)}
        numeric_fields = self.dtype.names or ()
        self._numbers: Callable[[tuple[Any, ...]], tuple[Any, ...]] = _getter(
            [index[name] for name in numeric_fields]
        )
        self._strings: Callable[[tuple[Any, ...]], tuple[Any, ...]] = _getter(
            [index[name] for name in schema.strings]
        )
        layout = "".join("q" if kind == "<i8" else "d" for kind in _kinds(self.dtype))
        self._pack = struct.Struct("<" + layout).pack
        self._tails: dict[Strings, bytes] = {}

    def offset(self, name: str) -> int:
        """Where numeric field ``name`` starts in a record (bytes; 8 bytes little-endian).

        For readers that take one field straight from the bytes (a latency probe, a peer in
        another process) without the layout's other constants.

        Example:
            >>> from lakeless.fleet._schema import SCHEMA
            >>> codec = CleanCodec(SCHEMA)
            >>> codec.offset(SCHEMA.time), codec.offset(SCHEMA.feature_names[0])
            (9, 25)
        """
        return HEADER + int(self.dtype.fields[name][1])  # type: ignore[index]

    def encode(self, event: Any) -> bytes:
        """One validated event object (of `lakeless.schema.event_type`) as a clean record."""
        values = msgspec.structs.astuple(event)
        return b"".join(
            (self.header, self._pack(*self._numbers(values)), self.tail(self._strings(values)))
        )

    def tail(self, strings: Strings) -> bytes:
        """The encoded string part for ``strings`` (key, context..., label), memoised."""
        tail = self._tails.get(strings)
        if tail is None:
            parts = []
            for text in strings:
                if text is None:
                    parts.append(_LENGTH.pack(_NULL))
                else:
                    data = text.encode()
                    parts.append(_LENGTH.pack(len(data)) + data)
            tail = b"".join(parts)
            if len(self._tails) > _MEMO_LIMIT:
                self._tails.clear()
            self._tails[strings] = tail
        return tail

    def encode_columns(
        self, numeric: np.ndarray, strings: Sequence[Sequence[str | None]]
    ) -> list[bytes]:
        """Many records at once: a `dtype` array and, per record, its strings.

        Args:
            numeric: structured array of `dtype` (time, sequence, features).
            strings: per record, the values of `PipelineSchema.strings` in order.
        """
        if numeric.dtype != self.dtype:
            numeric = numeric.astype(self.dtype)
        block = np.ascontiguousarray(numeric).tobytes()
        size = self.dtype.itemsize
        header, tail = self.header, self.tail
        return [
            b"".join((header, block[i * size : (i + 1) * size], tail(tuple(row))))
            for i, row in enumerate(strings)
        ]


def _kinds(dtype: np.dtype[Any]) -> list[str]:
    return [dtype.fields[name][0].str for name in dtype.names or ()]  # type: ignore[index]


def _getter(positions: Sequence[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    if len(positions) == 1:
        (position,) = positions
        return lambda values: (values[position],)
    return operator.itemgetter(*positions)


class Decoder:
    """Decodes batches of clean records into `CleanBatch` objects of the reader's schema.

    Args:
        schema: the reader's schema.
        writers: other registered versions of the pipeline's schema by fingerprint, whose
            records are decoded and projected onto ``schema``.
        describe: names a fingerprint in error messages (e.g. with its registry version).
    """

    def __init__(
        self,
        schema: PipelineSchema,
        writers: Mapping[bytes, PipelineSchema] | None = None,
        describe: Callable[[bytes], str] | None = None,
    ) -> None:
        self.schema = schema
        self.codec = CleanCodec(schema)
        self.header = self.codec.header
        self.head = self.codec.head
        # ``value[:head]`` of every value without a Python loop (0.6x the comprehension's time)
        self._cut_head = operator.itemgetter(slice(0, self.head))
        self._writers = {fp: w for fp, w in (writers or {}).items() if fp != schema.fingerprint}
        self._describe = describe or (lambda fp: fp.hex())
        self._memo: dict[bytes, Strings] = {}
        self._others: dict[bytes, Decoder] = {}
        n_strings = len(schema.strings)
        self._n_strings = n_strings
        self._min_len = self.head + 2 * n_strings
        self._fingerprint = int.from_bytes(schema.fingerprint, "little")
        self._head_dtype = np.dtype(
            {
                "names": ["version", "fingerprint"],
                "formats": ["u1", "<u8"],
                "offsets": [0, 1],
                "itemsize": self.head,
            }
        )

    # ---- whole batches ---------------------------------------------------------------------

    def decode(self, values: Sequence[bytes], *, strings: bool = True) -> CleanBatch:
        """Decode every value; with ``strings=False`` the string lists stay empty.

        Raises:
            BadValue: a value is not a clean record of a known schema version (``index``
                says which).
        """
        n = len(values)
        head = self.head
        try:
            joined = b"".join(map(self._cut_head, values))
        except TypeError:  # a None value (a tombstone)
            raise self._locate(values) from None
        if len(joined) != n * head:
            raise self._locate(values)
        if not n:
            return CleanBatch(
                self.schema, np.empty(0, self.codec.dtype), self._decode_strings([], strings)
            )
        # Two 1-d comparisons (version byte, fingerprint as one uint64) instead of a 2-d one
        # over 9 byte columns, which cost as much as the rest of a numbers-only decode.
        heads = np.frombuffer(joined, dtype=self._head_dtype)
        if (heads["version"] != LAYOUT_VERSION).any() or (
            heads["fingerprint"] != self._fingerprint
        ).any():
            return self._mixed(values, strings)
        # A strided view of the joined bytes, no copy: `CleanBatch.features` makes the one
        # copy a consumer needs (read-only, like any array over bytes).
        numeric: np.ndarray = np.ndarray(
            (n,), self.codec.dtype, joined, offset=HEADER, strides=(head,)
        )
        return CleanBatch(self.schema, numeric, self._decode_strings(values, strings))

    def decode_valid(
        self, values: Sequence[bytes | None], *, strings: bool = True
    ) -> tuple[CleanBatch, list[int], list[BadValue]]:
        """Decode what can be decoded: ``(batch, kept indices, problems)``.

        For stages that skip (and log) a bad record instead of stopping.
        """
        try:
            return self.decode(values, strings=strings), list(range(len(values))), []  # type: ignore[arg-type]
        except BadValue:
            pass
        kept: list[int] = []
        problems: list[BadValue] = []
        good: list[bytes] = []
        for i, value in enumerate(values):
            try:
                self.decode([value], strings=True)  # type: ignore[list-item]
            except BadValue as exc:
                problems.append(BadValue(i, exc.reason))
                continue
            kept.append(i)
            good.append(value)  # type: ignore[arg-type]
        if not good:
            return empty_batch(self.schema), kept, problems
        return self.decode(good, strings=strings), kept, problems

    def strings_of(self, values: Sequence[bytes]) -> dict[str, list[str | None]]:
        """The string fields of ``values`` (all of the reader's version)."""
        return self._decode_strings(values, True)

    # ---- internals -------------------------------------------------------------------------

    def _decode_strings(
        self, values: Sequence[bytes], strings: bool
    ) -> dict[str, list[str | None]]:
        names = self.schema.strings
        if not strings or not values:
            return {name: [] for name in names}
        memo = self._memo
        if len(memo) > _MEMO_LIMIT:
            memo.clear()
        head = self.head
        tails = [value[head:] for value in values]
        decoded: list[Strings | None] = list(map(memo.get, tails))
        if None in decoded:
            for i, tail in enumerate(tails):
                if decoded[i] is None:
                    try:
                        decoded[i] = memo[tail] = self._parse_tail(tail)
                    except (ValueError, struct.error, UnicodeDecodeError) as exc:
                        raise BadValue(i, f"bad strings: {exc}") from exc
        columns = zip(*decoded, strict=True)
        return {name: list(column) for name, column in zip(names, columns, strict=True)}

    def _parse_tail(self, tail: bytes) -> Strings:
        out: list[str | None] = []
        pos = 0
        for _ in range(self._n_strings):
            (size,) = _LENGTH.unpack_from(tail, pos)
            pos += 2
            if size == _NULL:
                out.append(None)
            else:
                if pos + size > len(tail):
                    raise ValueError("string runs past the end of the record")
                out.append(tail[pos : pos + size].decode())
                pos += size
        if pos != len(tail):
            raise ValueError(f"{len(tail) - pos} unexpected trailing bytes")
        if out[0] is None:
            raise ValueError(f"the key ({self.schema.key}) is null")
        return tuple(out)

    def _locate(self, values: Sequence[bytes | None]) -> BadValue:
        for i, value in enumerate(values):
            if not isinstance(value, bytes):
                return BadValue(i, "no value (a tombstone)")
            if len(value) < HEADER or value[0] != LAYOUT_VERSION:
                got = value[0] if value else "none"
                return BadValue(
                    i, f"not a clean record (layout version byte {got}, expected {LAYOUT_VERSION})"
                )
            fingerprint = value[1:HEADER]
            if fingerprint != self.schema.fingerprint:
                other = self._other(fingerprint)
                if other is None:
                    return BadValue(i, self._unknown(fingerprint))
                if len(value) < other.head + 2 * other._n_strings:
                    return BadValue(i, f"too short for a clean record ({len(value)} bytes)")
            elif len(value) < self._min_len:
                return BadValue(i, f"too short for a clean record ({len(value)} bytes)")
        return BadValue(0, "malformed batch")

    def _unknown(self, fingerprint: bytes) -> str:
        known = ", ".join(self._describe(fp) for fp in (self.schema.fingerprint, *self._writers))
        return (
            f"written with schema fingerprint {fingerprint.hex()}, which is not a registered "
            f"version of this pipeline's schema (this reader knows {known})"
        )

    def _other(self, fingerprint: bytes) -> Decoder | None:
        decoder = self._others.get(fingerprint)
        if decoder is None:
            writer = self._writers.get(fingerprint)
            if writer is None:
                return None
            decoder = self._others[fingerprint] = Decoder(writer)
        return decoder

    def _mixed(self, values: Sequence[bytes], strings: bool) -> CleanBatch:
        """A batch with records of other schema versions: decode per version, project."""
        groups: dict[bytes, list[int]] = {}
        for i, value in enumerate(values):
            if value[0] != LAYOUT_VERSION:
                raise self._locate(values)
            groups.setdefault(value[1:HEADER], []).append(i)
        out = np.zeros(len(values), dtype=self.codec.dtype)
        columns: dict[str, list[str | None]] = {
            name: [None] * len(values) if strings else [] for name in self.schema.strings
        }
        for fingerprint, rows in groups.items():
            part_values = [values[i] for i in rows]
            if fingerprint == self.schema.fingerprint:
                part = self._same(part_values, strings, rows)
            else:
                other = self._other(fingerprint)
                if other is None:
                    raise BadValue(rows[0], self._unknown(fingerprint))
                try:
                    part = self._project(other.decode(part_values, strings=strings))
                except BadValue as exc:
                    raise BadValue(rows[exc.index], exc.reason) from exc
            index = np.asarray(rows, dtype=np.intp)
            out[index] = part.numeric
            if strings:
                for name, column in columns.items():
                    for row, text in zip(rows, part.strings[name], strict=True):
                        column[row] = text
        return CleanBatch(self.schema, out, columns)

    def _same(self, values: list[bytes], strings: bool, rows: list[int]) -> CleanBatch:
        try:
            return self.decode(values, strings=strings)
        except BadValue as exc:
            raise BadValue(rows[exc.index], exc.reason) from exc

    def _project(self, batch: CleanBatch) -> CleanBatch:
        """A batch of an older version as the reader's schema (added fields: defaults)."""
        schema = self.schema
        n = len(batch)
        numeric = np.zeros(n, dtype=self.codec.dtype)
        have = set(batch.numeric.dtype.names or ())
        for name in numeric.dtype.names or ():
            if name in have:
                numeric[name] = batch.numeric[name]
            else:
                numeric[name] = _default_number(schema, name)
        decoded = n > 0 and bool(batch.strings.get(batch.schema.key))
        strings: dict[str, list[str | None]] = {}
        for name in schema.strings:
            if not decoded:
                strings[name] = []
            elif name in batch.strings:
                strings[name] = batch.strings[name]
            else:
                strings[name] = [schema.field(name).default] * n
        return CleanBatch(schema, numeric, strings)


def _default_number(schema: PipelineSchema, name: str) -> float:
    spec = schema.field(name)
    if not spec.has_default:
        raise BadValue(0, f"field {name!r} is missing in an older record and has no default")
    return float(spec.default)
