"""The ``twin`` stage: the latest state of every entity, kept from its clean and anomaly topics.

`TwinStage` consumes both topics in one consumer group and applies each batch to a `TwinStore`
(SQLite by default, PostgreSQL with a ``postgresql://`` URL; `open_store`) in one transaction
before it commits the batch's offsets: at-least-once delivery plus idempotent, keyed,
forward-only writes, so the stored state is what exactly-once processing would give, and
replaying the topics changes nothing. `make_app` serves the state over HTTP/JSON (one entity,
all of them, entities with open failure episodes). Tables, counts and episodes are described
in ``lakeless.twin._store``.

Example:
    >>> from pathlib import Path
    >>> TwinSettings().database_url(Path("/var/lib/lakeless"), "car-fleet")
    'sqlite:////var/lib/lakeless/twin.sqlite'
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.twin._settings import (
    DEFAULT_EPISODE_GAP_MS,
    DEFAULT_KEEP_ANOMALIES,
    DEFAULT_KEEP_READINGS,
    TwinSettings,
)

if TYPE_CHECKING:
    from lakeless.twin._api import make_app
    from lakeless.twin._open import open_store
    from lakeless.twin._records import (
        AnomalyRow,
        ApplyResult,
        EntityState,
        LastAnomaly,
        Reading,
        TwinError,
    )
    from lakeless.twin._stage import TwinStage, TwinStats, TwinStep, open_twin, run_twin
    from lakeless.twin._store import TwinStore

__all__ = [
    "DEFAULT_EPISODE_GAP_MS",
    "DEFAULT_KEEP_ANOMALIES",
    "DEFAULT_KEEP_READINGS",
    "AnomalyRow",
    "ApplyResult",
    "EntityState",
    "LastAnomaly",
    "Reading",
    "TwinError",
    "TwinSettings",
    "TwinStage",
    "TwinStats",
    "TwinStep",
    "TwinStore",
    "make_app",
    "open_store",
    "open_twin",
    "run_twin",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "._api": ["make_app"],
        "._open": ["open_store"],
        "._stage": ["TwinStage", "TwinStats", "TwinStep", "open_twin", "run_twin"],
        "._records": [
            "AnomalyRow",
            "ApplyResult",
            "EntityState",
            "LastAnomaly",
            "Reading",
            "TwinError",
        ],
        "._store": ["TwinStore"],
    },
)
