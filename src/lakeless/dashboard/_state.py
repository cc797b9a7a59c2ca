"""`DashboardState`: what the page shows, shared by the collector thread and the HTTP handlers.

The collector (`lakeless.dashboard.KafkaCollector`) writes samples of topic end offsets and
consumer-group committed offsets, anomaly records and registry summaries; the handlers read
JSON-ready views of them. Every method takes one lock, so a view is never half updated. Nothing
here talks to Kafka, which is what lets the unit tests feed it numbers by hand.

Rates are derivatives over a short sliding window of samples (`DashboardState.rate_window`
seconds), so one late sample does not make the numbers jump; a stage's events/s is the rate at
which its consumer group commits (what it has processed), its lag the sum over partitions of
``end offset - committed offset``.

Example:
    >>> state = DashboardState(STAGES, rate_window=10)
    >>> state.add_sample(Sample(at=0.0, ends={"sensor-raw": 0}, committed={}))
    >>> state.add_sample(Sample(at=2.0, ends={"sensor-raw": 500}, committed={}))
    >>> state.stats()["topics"]["sensor-raw"]["rate"]
    250.0
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from lakeless.registry import ModelSummary
from lakeless.schema.outputs import AnomalyRecord

__all__ = [
    "STAGES",
    "DashboardState",
    "GroupOffsets",
    "Sample",
    "StageSpec",
]

#: Rate points kept per stage for the sparklines (one a second: two minutes).
HISTORY: Final = 120


@dataclass(frozen=True)
class StageSpec:
    """One pipeline stage as the dashboard shows it.

    Attributes:
        name: the stage (``preprocess``, ``score``, ...).
        group: its consumer group (``None``: the stage has no group, e.g. ingest).
        reads: topic roles it consumes (keys of the topic map: ``raw``, ``clean``, ...).
        writes: topic roles it produces to.
    """

    name: str
    group: str | None
    reads: tuple[str, ...]
    writes: tuple[str, ...]


#: The stages of ARCHITECTURE.md that move events, with their default consumer groups.
STAGES: Final = (
    StageSpec("ingest", None, (), ("raw",)),
    StageSpec("preprocess", "lakeless-preprocess", ("raw",), ("clean", "dlq")),
    StageSpec("score", "lakeless-score", ("clean",), ("anomalies",)),
    StageSpec("twin", "lakeless-twin", ("clean", "anomalies"), ()),
)


@dataclass(frozen=True)
class GroupOffsets:
    """What one consumer group has committed on one topic: summed offsets and summed lag.

    Attributes:
        committed: sum of committed offsets over the partitions that have one.
        lag: sum of ``end - committed`` over those partitions; ``None`` when none has one.
    """

    committed: int
    lag: int | None


@dataclass(frozen=True)
class Sample:
    """One collector reading.

    Attributes:
        at: monotonic seconds when it was taken.
        ends: topic name -> sum of the partitions' end offsets (missing: not readable now).
        committed: ``(group, topic)`` -> that group's offsets on that topic.
        error: why part of the reading failed, if it did.
    """

    at: float
    ends: Mapping[str, int]
    committed: Mapping[tuple[str, str], GroupOffsets]
    error: str | None = None


@dataclass
class _Feed:
    """The anomaly ring buffer; ``seq`` numbers entries so clients ask for what is new."""

    items: deque[tuple[int, dict[str, Any]]]
    seq: int = 0
    total: int = 0


@dataclass
class _Models:
    summaries: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    revision: int = 0
    refreshed_at: float | None = None


class DashboardState:
    """Thread-safe store of samples, anomalies and registry summaries, with JSON views.

    Args:
        stages: the stages to show (`STAGES` with the configured group names).
        topics: topic role -> topic name (``raw``, ``clean``, ``dlq``, ``anomalies``).
        rate_window: seconds of samples a rate is computed over.
        max_anomalies: anomalies kept for the feed.
    """

    def __init__(
        self,
        stages: Sequence[StageSpec] = STAGES,
        topics: Mapping[str, str] | None = None,
        *,
        rate_window: float = 3.0,
        max_anomalies: int = 500,
    ) -> None:
        self.stages = tuple(stages)
        self.topics = dict(
            topics
            or {
                "raw": "sensor-raw",
                "clean": "sensor-clean",
                "dlq": "sensor-dlq",
                "anomalies": "anomalies",
            }
        )
        self.rate_window = rate_window
        self.anomalies_capacity = max_anomalies
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque()
        self._history: dict[str, deque[float]] = {
            s.name: deque(maxlen=HISTORY) for s in self.stages
        }
        self._last: dict[str, Any] | None = None
        self._feed = _Feed(deque(maxlen=max_anomalies))
        self._models = _Models()
        self.started = time.time()

    # ---- writing (the collector) ---------------------------------------------------------------

    def add_sample(self, sample: Sample) -> None:
        """Record a reading and recompute the rates (call about once a second)."""
        with self._lock:
            self._samples.append(sample)
            # Keep one sample older than the window, so a rate always spans the full window.
            while len(self._samples) > 2 and sample.at - self._samples[1].at >= self.rate_window:
                self._samples.popleft()
            self._last = self._compute()
            for stage in self._last["stages"]:
                rate = stage["rate"]
                self._history[stage["name"]].append(0.0 if rate is None else rate)

    def add_anomalies(self, anomalies: Iterable[AnomalyRecord | Mapping[str, Any]]) -> int:
        """Append anomaly records (or their JSON dicts) to the feed.

        A feed entry is the record as its topic holds it (the schema's own field names:
        ``car_id``, ``ts``, ... for the car fleet) plus a feed ``id``.
        """
        added = 0
        with self._lock:
            for anomaly in anomalies:
                item = (
                    dict(anomaly) if isinstance(anomaly, Mapping) else msgspec.to_builtins(anomaly)
                )
                self._feed.seq += 1
                self._feed.total += 1
                item["id"] = self._feed.seq
                self._feed.items.append((self._feed.seq, item))
                added += 1
        return added

    def set_models(
        self,
        summaries: Sequence[ModelSummary],
        live: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        """Replace the registry view (``error``: the last refresh failed; keep what we had)."""
        with self._lock:
            models = self._models
            models.refreshed_at = time.time()
            if error is not None:
                models.error = error
                return
            rows = [_summary_row(s) for s in summaries]
            if rows != models.summaries or dict(live) != models.live or models.error:
                models.revision += 1
            models.summaries, models.live, models.error = rows, dict(live), None

    # ---- reading (the HTTP handlers) -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per-stage events/s and lag, per-topic totals and rates, live models, history."""
        with self._lock:
            base = self._last or self._compute()
            history = {name: list(points) for name, points in self._history.items()}
            return {
                **base,
                "history": history,
                "live_models": dict(self._models.live),
                "models_revision": self._models.revision,
                "anomalies_seen": self._feed.total,
                "uptime_s": round(time.time() - self.started, 1),
            }

    def anomalies(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Feed entries with ``id > after``, newest first, at most ``limit``."""
        with self._lock:
            newer = [item for seq, item in reversed(self._feed.items) if seq > after]
        return newer[:limit]

    @property
    def last_anomaly_id(self) -> int:
        """The ``id`` of the newest feed entry (0: none yet)."""
        with self._lock:
            return self._feed.seq

    def models(self) -> dict[str, Any]:
        """Registry summaries (newest first), the live version per name, revision, error."""
        with self._lock:
            m = self._models
            return {
                "models": list(m.summaries),
                "live": dict(m.live),
                "revision": m.revision,
                "error": m.error,
                "refreshed_at": m.refreshed_at,
            }

    def summary(self, name: str, version: int) -> dict[str, Any] | None:
        """One registry summary row, or ``None``."""
        with self._lock:
            for row in self._models.summaries:
                if row["name"] == name and row["version"] == version:
                    return row
        return None

    # ---- internals -----------------------------------------------------------------------------

    def _compute(self) -> dict[str, Any]:
        samples = self._samples
        last = samples[-1] if samples else None
        first = samples[0] if samples else None
        span = (last.at - first.at) if last and first else 0.0

        def rate(new: int | None, old: int | None) -> float | None:
            if new is None or old is None or span <= 0:
                return None
            return round(max(0, new - old) / span, 1)

        topics: dict[str, Any] = {}
        for role, name in self.topics.items():
            end = last.ends.get(name) if last else None
            old = first.ends.get(name) if first else None
            topics[name] = {"role": role, "end": end, "rate": rate(end, old)}

        stages = []
        for spec in self.stages:
            out_rates = {
                self.topics[r]: topics[self.topics[r]]["rate"]
                for r in spec.writes
                if r in self.topics
            }
            lag: int | None = None
            consumed_new = consumed_old = None
            if spec.group is not None:
                for role in spec.reads:
                    topic = self.topics.get(role)
                    if topic is None:
                        continue
                    now = last.committed.get((spec.group, topic)) if last else None
                    then = first.committed.get((spec.group, topic)) if first else None
                    if now is not None and now.lag is not None:
                        lag = (lag or 0) + now.lag
                    if now is not None and then is not None:
                        consumed_new = (consumed_new or 0) + now.committed
                        consumed_old = (consumed_old or 0) + then.committed
                stage_rate = rate(consumed_new, consumed_old)
            else:
                # A stage without a group (ingest) is as fast as what it writes.
                known = [r for r in out_rates.values() if r is not None]
                stage_rate = round(sum(known), 1) if known else None
            stages.append(
                {
                    "name": spec.name,
                    "group": spec.group,
                    "reads": [self.topics[r] for r in spec.reads if r in self.topics],
                    "rate": stage_rate,
                    "lag": lag,
                    "out": out_rates,
                }
            )
        return {
            "at": time.time(),
            "window_s": round(span, 2),
            "stages": stages,
            "topics": topics,
            "error": last.error if last else None,
        }


def _summary_row(summary: ModelSummary) -> dict[str, Any]:
    row: dict[str, Any] = msgspec.to_builtins(summary)
    row.pop("kind", None)
    row.pop("normalization", None)  # 2 x 18 floats nobody reads on a dashboard
    report = row.get("report") or {}
    files = report.get("files") if isinstance(report, dict) else None
    row["has_report_image"] = bool(isinstance(files, dict) and files.get("png"))
    return row
