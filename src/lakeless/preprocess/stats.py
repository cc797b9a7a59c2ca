"""Counters of the preprocess stage, balanced so that nothing is dropped silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lakeless.kafka._stats import StageStats

__all__ = ["PreprocessStats"]


@dataclass
class PreprocessStats(StageStats):
    """What happened to every record read.

    Every record read is counted once in ``received`` (``in``) and once in exactly one of
    ``clean``, ``dead_lettered`` (per reason in ``by_reason``) or ``filtered``; `balanced`
    checks that.

    Example:
        >>> stats = PreprocessStats(received=3, clean=1, filtered=1)
        >>> stats.count_rejection("out_of_range")
        >>> stats.balanced, stats.dead_lettered
        (True, 1)
    """

    clean: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def dlq(self) -> int:
        """Records dead-lettered, all reasons together."""
        return self.dead_lettered

    @property
    def balanced(self) -> bool:
        """True if ``received == clean + dead_lettered + filtered``."""
        return self.received == self.clean + self.dead_lettered + self.filtered

    def count_rejection(self, reason: str) -> None:
        """Count one dead-lettered record."""
        self.dead_lettered += 1
        self.by_reason[reason] += 1

    def to_dict(self) -> dict[str, Any]:
        """The common counts plus ``clean``, ``dlq_by_reason`` and ``balanced``."""
        out = super().to_dict()
        out.pop("by_reason", None)
        out["dlq_by_reason"] = dict(sorted((k, v) for k, v in self.by_reason.items() if v))
        out["balanced"] = self.balanced
        return out
