"""Windows: parsing, resolution rules (against a fake consumer), lineage round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from lakeless.dataset import DatasetError, ResolvedWindow, Window, parse_duration, to_millis
from lakeless.errors import LakelessError


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("30m", 1_800_000),
        ("2h", 7_200_000),
        ("90s", 90_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("500ms", 500),
        ("1h30m", 5_400_000),
        (" 1.5h ", 5_400_000),
        ("2H", 7_200_000),
        (timedelta(minutes=5), 300_000),
    ],
)
def test_parse_duration(text: str | timedelta, millis: int) -> None:
    assert parse_duration(text) == millis


@pytest.mark.parametrize("text", ["", "30", "m", "30 minutes", "-5m", "0s", "1h-30m", "30m!"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DatasetError, match="duration"):
        parse_duration(text)


def test_to_millis() -> None:
    aware = datetime(2024, 1, 1, tzinfo=UTC)
    assert to_millis(aware) == 1_704_067_200_000
    assert to_millis("2024-01-01T01:00:00+01:00") == 1_704_067_200_000
    assert to_millis(5) == 5
    with pytest.raises(DatasetError, match=r"naive datetime .* ambiguous"):
        to_millis(datetime(2024, 1, 1))
    with pytest.raises(DatasetError, match="naive"):
        to_millis("2024-01-01T00:00:00")
    with pytest.raises(DatasetError, match="ISO 8601"):
        to_millis("yesterday")
    with pytest.raises(DatasetError, match=">= 0"):
        to_millis(-1)
    with pytest.raises(DatasetError, match="not a time"):
        to_millis(True)


def test_window_constructors_and_repr() -> None:
    assert Window.last("30m") == Window("last", duration_ms=1_800_000)
    assert repr(Window.last("90s")) == "Window.last('90s')"
    assert repr(Window.all()) == "Window.all()"
    assert Window.between(1, 2).describe() == "between(1, 2)"
    assert Window.between(10).end_ms is None
    assert Window.offsets({2: (5, None), 0: (1, 3)}).ranges == ((0, 1, 3), (2, 5, None))
    with pytest.raises(DatasetError, match="before its start"):
        Window.between(10, 5)
    with pytest.raises(DatasetError, match=r"partition 0: \[5, 3\)"):
        Window.offsets({0: (5, 3)})
    with pytest.raises(DatasetError, match="at least one"):
        Window.offsets({})
    assert issubclass(DatasetError, LakelessError)


class FakeConsumer:
    """list_topics / watermarks / offsets_for_times over in-memory partitions of timestamps."""

    def __init__(self, logs: dict[int, list[int]], low: dict[int, int] | None = None) -> None:
        self.logs = logs  # partition -> record timestamps, offset = index
        self.low = low or {}

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = SimpleNamespace(partitions=dict.fromkeys(self.logs), error=None)
        return SimpleNamespace(topics={"t": meta} if topic == "t" else {}, cluster_id="c-1")

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return self.low.get(tp.partition, 0), len(self.logs[tp.partition])

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float) -> list[Any]:
        out = []
        for tp in tps:
            stamps = self.logs[tp.partition]
            found = next((i for i, ts in enumerate(stamps) if ts >= tp.offset), -1)
            out.append(SimpleNamespace(partition=tp.partition, offset=found, error=None))
        return out


LOGS = {0: [100, 200, 300, 400], 1: [150, 250], 2: []}


def resolve(window: Window, **kwargs: Any) -> ResolvedWindow:
    return window.resolve(FakeConsumer(LOGS, **kwargs), "t", now_ms=1000)  # type: ignore[arg-type]


def test_resolve_between_uses_first_offset_at_or_after_each_time() -> None:
    resolved = resolve(Window.between(200, 300))
    assert dict(resolved.partitions) == {0: (1, 2), 1: (1, 2), 2: (0, 0)}
    assert (resolved.start_ms, resolved.end_ms, resolved.resolved_at) == (200, 300, 1000)
    assert resolved.cluster_id == "c-1"  # the offsets are this cluster's
    # No record at or after the time: the high watermark.
    assert dict(resolve(Window.between(260, 10_000)).partitions) == {
        0: (2, 4),
        1: (2, 2),
        2: (0, 0),
    }
    open_end = resolve(Window.between(260))
    assert dict(open_end.partitions) == {0: (2, 4), 1: (2, 2), 2: (0, 0)}
    assert open_end.end_ms == 1000  # "up to now" is recorded


def test_resolve_last_all_and_offsets() -> None:
    last = resolve(Window.last("750ms"))
    assert (last.start_ms, last.end_ms) == (250, 1000)
    assert dict(last.partitions) == {0: (2, 4), 1: (1, 2), 2: (0, 0)}
    assert last.spec == "last('750ms')"
    every = resolve(Window.all(), low={0: 1})
    assert dict(every.partitions) == {0: (1, 4), 1: (0, 2), 2: (0, 0)}
    assert every.start_ms is None and every.num_records == 5
    explicit = resolve(Window.offsets({0: (1, 99), 1: (5, None)}))
    assert dict(explicit.partitions) == {0: (1, 4), 1: (2, 2)}  # clamped to the watermark


def test_resolve_errors_are_clear() -> None:
    with pytest.raises(DatasetError, match=r"t\[0\]@0 is gone: the log starts at 2"):
        resolve(Window.offsets({0: (0, 3)}), low={0: 2})
    with pytest.raises(DatasetError, match=r"no partition\(s\) \[7\]"):
        resolve(Window.offsets({7: (0, 1)}))
    with pytest.raises(DatasetError, match="topic 'nope' cannot be read"):
        Window.all().resolve(FakeConsumer(LOGS), "nope")  # type: ignore[arg-type]


def test_resolved_window_round_trips_through_json() -> None:
    window = ResolvedWindow("sensor-clean", {1: (5, 9), 0: (0, 3)}, 10, 20, 30, "last('30m')")
    data = json.loads(json.dumps(window.to_dict()))
    assert data["partitions"] == {"0": [0, 3], "1": [5, 9]}
    assert data["num_records"] == 7 and data["version"] == 1
    back = ResolvedWindow.from_dict(data)
    assert back == window
    assert list(back.partitions) == [0, 1]
    assert "7 records in 2 partitions" in back.describe()
    assert back.cluster_id is None  # a lineage from before clusters were named still loads

    named = ResolvedWindow("t", {0: (0, 3)}, cluster_id="abc", bootstrap_servers="h:9092")
    assert ResolvedWindow.from_dict(json.loads(json.dumps(named.to_dict()))) == named
    assert "t on h:9092" in named.describe()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"topic": "t"},
        {"topic": "t", "partitions": {"x": [0, 1]}},
        {"topic": "t", "partitions": {"0": [5, 1]}},
        {"topic": "t", "partitions": {"0": [0]}},
        {"topic": "t", "partitions": {}, "version": 99},
    ],
)
def test_resolved_window_from_bad_dict(data: dict[str, Any]) -> None:
    with pytest.raises(DatasetError):
        ResolvedWindow.from_dict(data)
