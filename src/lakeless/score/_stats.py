"""`ScoreStats`: what a scorer (or a group of scorer processes) committed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScoreStats"]


@dataclass
class ScoreStats:
    """Counts of committed work: a batch counts once its outputs and offsets are committed.

    Example:
        >>> a = ScoreStats(events=10, anomalies=1, batches=1)
        >>> a.by_model["car-ae:1"] += 10
        >>> b = ScoreStats(events=5, batches=1)
        >>> a.merge(b); a.events, a.batches
        (15, 2)
    """

    events: int = 0
    anomalies: int = 0
    batches: int = 0
    #: Records that are not ``sensor-clean`` records: logged with their location and skipped.
    invalid: int = 0
    #: Events scored per ``name:version``.
    by_model: Counter[str] = field(default_factory=Counter)
    #: Models swapped in while running (the first model included).
    swaps: int = 0
    #: Batches whose transaction was aborted (exactly-once) and that were read again.
    aborted: int = 0
    #: Commits refused because the group rebalanced (at-least-once: those records repeat).
    commit_failures: int = 0
    #: Wall seconds of the run (the longest process, for a group of processes).
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def rate(self) -> float:
        """Events per wall second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def merge(self, other: ScoreStats) -> None:
        """Add another process's counts to these."""
        self.events += other.events
        self.anomalies += other.anomalies
        self.batches += other.batches
        self.invalid += other.invalid
        self.by_model.update(other.by_model)
        self.swaps += other.swaps
        self.aborted += other.aborted
        self.commit_failures += other.commit_failures
        self.seconds = max(self.seconds, other.seconds)
        self.stopped_by = self.stopped_by or other.stopped_by

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every count plus ``rate``."""
        return {
            "events": self.events,
            "anomalies": self.anomalies,
            "batches": self.batches,
            "invalid": self.invalid,
            "by_model": dict(sorted(self.by_model.items())),
            "swaps": self.swaps,
            "aborted": self.aborted,
            "commit_failures": self.commit_failures,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "stopped_by": self.stopped_by,
        }

    def to_json(self) -> str:
        """`to_dict` as one line of JSON."""
        return json.dumps(self.to_dict())
