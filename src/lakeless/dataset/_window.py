"""Training windows: what to read (`Window`) and exactly what was read (`ResolvedWindow`).

A `Window` is a request ("the last 30 minutes", "between these two times", "these offsets").
`Window.resolve` turns it into a `ResolvedWindow`: exact ``[start, end)`` offsets per partition,
fixed at that moment, so reading it again later returns the same records. The resolved window is
the lineage of a training run and serialises to plain JSON with `ResolvedWindow.to_dict`.

Example:
    >>> Window.last("1h30m")
    Window.last('90m')
    >>> parse_duration("90s")
    90000
    >>> resolved = ResolvedWindow("sensor-clean", {0: (10, 20), 1: (5, 5)}, resolved_at=0)
    >>> resolved.num_records
    10
    >>> ResolvedWindow.from_dict(resolved.to_dict()) == resolved
    True
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from confluent_kafka import Consumer, KafkaException, TopicPartition

from lakeless.config import KafkaSettings
from lakeless.errors import LakelessError

_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
#: Version of the `ResolvedWindow.to_dict` layout.
LINEAGE_VERSION: Final = 1

TimeLike = datetime | int | str


class DatasetError(LakelessError):
    """A window cannot be resolved or read (unknown topic, offsets gone, bad arguments)."""


def parse_duration(text: str | timedelta) -> int:
    """A duration in milliseconds from ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` and the like.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``. Parts may be combined (``"1h30m"``);
    a `datetime.timedelta` is accepted as well.

    Raises:
        DatasetError: the text is not a positive duration.

    Example:
        >>> parse_duration("30m"), parse_duration("1h30m"), parse_duration("1.5s")
        (1800000, 5400000, 1500)
    """
    if isinstance(text, timedelta):
        millis = round(text.total_seconds() * 1000)
    else:
        cleaned = text.strip().lower().replace(" ", "")
        parts = _PART.findall(cleaned)
        if not cleaned or "".join(n + u for n, u in parts) != cleaned:
            raise DatasetError(
                f"not a duration: {text!r} (use e.g. '90s', '30m', '2h', '1d' or '1h30m')"
            )
        millis = round(sum(float(n) * _UNITS[u] for n, u in parts))
    if millis <= 0:
        raise DatasetError(f"a window duration must be positive, got {text!r}")
    return millis


def to_millis(value: TimeLike) -> int:
    """Milliseconds since the epoch from a timezone-aware datetime, an ISO string or an int.

    Naive datetimes are refused: whether they mean UTC or local time is a guess, and a wrong
    guess silently shifts the training window by hours.

    Example:
        >>> to_millis("2024-01-01T00:00:00Z"), to_millis(1_700_000_000_000)
        (1704067200000, 1700000000000)
    """
    if isinstance(value, bool):
        raise DatasetError(f"not a time: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise DatasetError(f"a time in ms since the epoch must be >= 0, got {value}")
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise DatasetError(f"not an ISO 8601 time: {value!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise DatasetError(
                f"naive datetime {value.isoformat()} is ambiguous: give it a timezone, "
                "e.g. datetime(..., tzinfo=UTC)"
            )
        return round(value.timestamp() * 1000)
    raise DatasetError(f"not a time: {value!r} (datetime, ISO string or ms since the epoch)")


def _format_duration(millis: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        if millis % _UNITS[unit] == 0:
            return f"{millis // _UNITS[unit]}{unit}"
    return f"{millis}ms"


@dataclass(frozen=True)
class Window:
    """Which records to train on, before it is pinned down to offsets.

    Build one with `Window.last`, `Window.between`, `Window.offsets` or `Window.all`;
    `resolve` fixes it to exact offsets (see `ResolvedWindow`).

    Attributes:
        kind: ``"all"``, ``"last"``, ``"between"`` or ``"offsets"``.
        duration_ms: length of a ``last`` window.
        start_ms: first timestamp of a ``between`` window (inclusive).
        end_ms: end timestamp of a ``between`` window (exclusive); ``None``: up to now.
        ranges: ``(partition, start, end)`` of an ``offsets`` window (end ``None``: up to now).
    """

    kind: Literal["all", "last", "between", "offsets"]
    duration_ms: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    ranges: tuple[tuple[int, int, int | None], ...] = field(default=())

    @classmethod
    def all(cls) -> Window:
        """Every record the topic holds now (remote tier included).

        Example:
            >>> Window.all()
            Window.all()
        """
        return cls("all")

    @classmethod
    def last(cls, duration: str | timedelta) -> Window:
        """Records of the last ``duration`` before the moment the window is resolved.

        Example:
            >>> Window.last("30m").duration_ms
            1800000
        """
        return cls("last", duration_ms=parse_duration(duration))

    @classmethod
    def between(cls, start: TimeLike, end: TimeLike | None = None) -> Window:
        """Records with timestamps in ``[start, end)``; ``end=None``: up to now.

        Times are timezone-aware datetimes, ISO strings or ms since the epoch.

        Example:
            >>> w = Window.between("2024-01-01T00:00Z", "2024-01-01T01:00Z")
            >>> w.end_ms - w.start_ms
            3600000
        """
        start_ms = to_millis(start)
        end_ms = None if end is None else to_millis(end)
        if end_ms is not None and end_ms < start_ms:
            raise DatasetError(f"window end {end_ms} is before its start {start_ms}")
        return cls("between", start_ms=start_ms, end_ms=end_ms)

    @classmethod
    def offsets(cls, ranges: Mapping[int, tuple[int, int | None]]) -> Window:
        """Explicit ``{partition: (start, end)}`` offsets, end exclusive (``None``: up to now).

        Partitions that are not named are not read.

        Example:
            >>> Window.offsets({0: (0, 100), 2: (50, None)}).ranges
            ((0, 0, 100), (2, 50, None))
        """
        out = []
        for partition, (start, end) in sorted(ranges.items()):
            if partition < 0 or start < 0 or (end is not None and end < start):
                raise DatasetError(
                    f"bad offset range for partition {partition}: [{start}, {end}) "
                    "(need 0 <= start <= end)"
                )
            out.append((int(partition), int(start), None if end is None else int(end)))
        if not out:
            raise DatasetError("Window.offsets needs at least one partition")
        return cls("offsets", ranges=tuple(out))

    def __repr__(self) -> str:
        if self.kind == "last":
            assert self.duration_ms is not None
            return f"Window.last({_format_duration(self.duration_ms)!r})"
        if self.kind == "between":
            return f"Window.between({self.start_ms}, {self.end_ms})"
        if self.kind == "offsets":
            return f"Window.offsets({ {p: (s, e) for p, s, e in self.ranges} })"
        return "Window.all()"

    def describe(self) -> str:
        """A short human-readable description, kept in the lineage (``"last 30m"``)."""
        return repr(self).removeprefix("Window.")

    def resolve(
        self,
        source: KafkaSettings | Consumer,
        topic: str,
        *,
        now_ms: int | None = None,
        timeout: float = 30.0,
    ) -> ResolvedWindow:
        """Fix the window to exact per-partition ``[start, end)`` offsets, now.

        Times are looked up with offsets-for-times (the first offset whose timestamp is at or
        after the time); a time after the last record resolves to the high watermark, as does
        an open end. Offsets beyond the high watermark are clamped to it.

        Args:
            source: Kafka settings (a short-lived consumer is made) or a consumer to use.
            topic: the topic to read.
            now_ms: the "now" of a ``last`` window (default: the wall clock).
            timeout: seconds to wait for each metadata or offset request.

        Raises:
            DatasetError: unknown topic or partition, offsets below the log start, no answer.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        own = isinstance(source, KafkaSettings)
        consumer = _resolver(source) if isinstance(source, KafkaSettings) else source
        try:
            resolved = self._resolve(consumer, topic, now, timeout)
            if own:
                resolved = replace(resolved, bootstrap_servers=source.bootstrap_servers)
            return resolved
        except KafkaException as exc:
            raise DatasetError(f"cannot resolve {self.describe()} on {topic}: {exc}") from exc
        finally:
            if own:
                consumer.close()

    def _resolve(self, consumer: Consumer, topic: str, now: int, timeout: float) -> ResolvedWindow:
        cluster = consumer.list_topics(topic, timeout=timeout)
        metadata = cluster.topics.get(topic)
        if metadata is None or metadata.error is not None:
            reason = metadata.error.str() if metadata is not None else "not found"
            raise DatasetError(f"topic {topic!r} cannot be read: {reason}")
        existing = sorted(metadata.partitions)
        if self.kind == "offsets":
            partitions = [p for p, _, _ in self.ranges]
            missing = sorted(set(partitions) - set(existing))
            if missing:
                raise DatasetError(f"{topic} has no partition(s) {missing} (it has {existing})")
        else:
            partitions = existing
        marks = {
            p: consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=timeout, cached=False
            )
            for p in partitions
        }
        start_ms, end_ms = self.start_ms, self.end_ms
        if self.kind == "last":
            assert self.duration_ms is not None
            start_ms, end_ms = now - self.duration_ms, now
        ranges: dict[int, tuple[int, int]] = {}
        if self.kind == "all":
            ranges = {p: (low, high) for p, (low, high) in marks.items()}
        elif self.kind == "offsets":
            for p, start, end in self.ranges:
                low, high = marks[p]
                if start < low:
                    raise DatasetError(
                        f"{topic}[{p}]@{start} is gone: the log starts at {low} now "
                        "(deleted by retention?)"
                    )
                stop = high if end is None else min(end, high)
                ranges[p] = (min(start, stop), stop)
        else:
            assert start_ms is not None
            starts = _offsets_for_time(consumer, topic, marks, start_ms, timeout)
            # "last" ends at the records present now, not at the first one stamped after now:
            # records stamped slightly in the future (clock skew) still belong to it.
            if end_ms is None or self.kind == "last":
                ends = {p: high for p, (_, high) in marks.items()}
            else:
                ends = _offsets_for_time(consumer, topic, marks, end_ms, timeout)
            ranges = {p: (min(starts[p], ends[p]), ends[p]) for p in partitions}
        return ResolvedWindow(
            topic,
            ranges,
            start_ms=start_ms,
            end_ms=end_ms if end_ms is not None else (now if self.kind == "between" else None),
            resolved_at=now,
            spec=self.describe(),
            cluster_id=cluster.cluster_id or None,
        )


def _resolver(settings: KafkaSettings) -> Consumer:
    from lakeless.kafka import make_consumer

    return make_consumer(settings, group_id="lakeless-dataset")


def _offsets_for_time(
    consumer: Consumer,
    topic: str,
    marks: Mapping[int, tuple[int, int]],
    millis: int,
    timeout: float,
) -> dict[int, int]:
    """Per partition, the first offset stamped at or after ``millis`` (high watermark if none)."""
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, millis) for p in marks], timeout=timeout
    )
    out: dict[int, int] = {}
    for tp in found:
        if tp.error is not None:
            raise DatasetError(f"offsets for time {millis} on {topic}[{tp.partition}]: {tp.error}")
        low, high = marks[tp.partition]
        out[tp.partition] = high if tp.offset < 0 else max(low, min(tp.offset, high))
    return out


@dataclass(frozen=True)
class ResolvedWindow:
    """A window fixed to exact offsets: the lineage of a training run.

    Reading a resolved window again returns the same records, as long as retention has not
    deleted them (with tiered storage, old segments come back from the remote tier).

    Attributes:
        topic: the topic.
        partitions: ``{partition: (start, end)}``, end exclusive; do not mutate.
        start_ms: the window's start time, or ``None`` for offset-based windows.
        end_ms: the window's end time, or ``None`` for offset-based windows.
        resolved_at: when the window was resolved, ms since the epoch.
        spec: the `Window` it was resolved from, described (``"last('30m')"``).
        cluster_id: the id of the Kafka cluster whose offsets these are (``None``: unknown).
            Offsets are the cluster's own: a MirrorMaker replica of the topic numbers the
            same records differently.
        bootstrap_servers: where that cluster was reached when resolving (for people).
    """

    topic: str
    partitions: Mapping[int, tuple[int, int]]
    start_ms: int | None = None
    end_ms: int | None = None
    resolved_at: int = 0
    spec: str = ""
    cluster_id: str | None = None
    bootstrap_servers: str | None = None

    @property
    def num_records(self) -> int:
        """Offsets in the window.

        This is the record count, unless the topic is compacted or holds transaction markers
        (then it is an upper bound).
        """
        return sum(end - start for start, end in self.partitions.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (partition keys become strings), for the model registry.

        Example:
            >>> ResolvedWindow("t", {0: (1, 3)}, resolved_at=5).to_dict()["partitions"]
            {'0': [1, 3]}
        """
        return {
            "version": LINEAGE_VERSION,
            "topic": self.topic,
            "partitions": {str(p): [s, e] for p, (s, e) in sorted(self.partitions.items())},
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "resolved_at": self.resolved_at,
            "spec": self.spec,
            "num_records": self.num_records,
            "cluster_id": self.cluster_id,
            "bootstrap_servers": self.bootstrap_servers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolvedWindow:
        """The inverse of `to_dict` (also accepts the dict after a JSON round trip).

        Raises:
            DatasetError: the dict is not a resolved window.
        """
        try:
            if data.get("version", LINEAGE_VERSION) != LINEAGE_VERSION:
                raise DatasetError(f"unsupported lineage version {data['version']!r}")
            partitions = {
                int(p): (int(bounds[0]), int(bounds[1])) for p, bounds in data["partitions"].items()
            }
            window = cls(
                str(data["topic"]),
                dict(sorted(partitions.items())),
                start_ms=None if data.get("start_ms") is None else int(data["start_ms"]),
                end_ms=None if data.get("end_ms") is None else int(data["end_ms"]),
                resolved_at=int(data.get("resolved_at", 0)),
                spec=str(data.get("spec", "")),
                cluster_id=_text(data.get("cluster_id")),
                bootstrap_servers=_text(data.get("bootstrap_servers")),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise DatasetError(f"not a resolved window: {data!r} ({exc!r})") from exc
        for p, (start, end) in window.partitions.items():
            if p < 0 or start < 0 or end < start:
                raise DatasetError(f"bad range for partition {p}: [{start}, {end})")
        return window

    def describe(self) -> str:
        """One line for logs: topic, window, record count, time range."""
        when = ""
        if self.start_ms is not None:
            start = datetime.fromtimestamp(self.start_ms / 1000, UTC).isoformat()
            end = (
                "now"
                if self.end_ms is None
                else datetime.fromtimestamp(self.end_ms / 1000, UTC).isoformat()
            )
            when = f", {start} .. {end}"
        where = f" on {self.bootstrap_servers}" if self.bootstrap_servers else ""
        return (
            f"{self.topic}{where} {self.spec or 'window'}: {self.num_records} records in "
            f"{len(self.partitions)} partitions{when}"
        )


def _text(value: Any) -> str | None:
    """An optional text field of a saved window (``None`` stays ``None``)."""
    return None if value is None else str(value)
