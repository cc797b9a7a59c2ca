"""Counters of the preprocess stage, balanced so that nothing is dropped silently."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PreprocessStats"]


@dataclass
class PreprocessStats:
    """What happened to every record read.

    Every record read is counted once in ``received`` and once in exactly one of ``clean``,
    ``dead_lettered`` (per reason) or ``filtered``; `balanced` checks that.

    Example:
        >>> stats = PreprocessStats(received=3, clean=1, filtered=1)
        >>> stats.dead_lettered["out_of_range"] += 1
        >>> stats.balanced, stats.dlq
        (True, 1)
    """

    received: int = 0
    clean: int = 0
    filtered: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)

    @property
    def dlq(self) -> int:
        """Records dead-lettered, all reasons together."""
        return sum(self.dead_lettered.values())

    @property
    def balanced(self) -> bool:
        """True if ``received == clean + dlq + filtered``."""
        return self.received == self.clean + self.dlq + self.filtered

    def merge(self, other: PreprocessStats) -> None:
        """Add another worker's (or batch's) counts to these."""
        self.received += other.received
        self.clean += other.clean
        self.filtered += other.filtered
        self.dead_lettered.update(other.dead_lettered)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: ``in``, ``clean``, ``dlq``, ``dlq_by_reason``, ``filtered``, ``balanced``."""
        return {
            "in": self.received,
            "clean": self.clean,
            "dlq": self.dlq,
            "dlq_by_reason": dict(sorted((k, v) for k, v in self.dead_lettered.items() if v)),
            "filtered": self.filtered,
            "balanced": self.balanced,
        }

    def to_json(self) -> str:
        """`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=False)
