"""The ``twin`` stage: the latest state of every car, kept from ``sensor-clean`` and ``anomalies``.

`TwinStage` consumes both topics in one consumer group and applies each batch to a `TwinStore`
(SQLite by default, PostgreSQL with a ``postgresql://`` URL) in one transaction before it commits
the batch's offsets: at-least-once delivery plus idempotent, keyed, forward-only writes, so the
stored state is what exactly-once processing would give, and replaying the topics changes
nothing. `make_app` serves the state over HTTP/JSON (one car, the fleet, cars with open failure
episodes). Tables, counts and episodes are described in ``lakeless.twin._store``.

Example:
    >>> from lakeless.config import Settings
    >>> TwinSettings(url=None).database_url(Settings(data_dir="/var/lib/lakeless"))
    'sqlite:////var/lib/lakeless/twin.sqlite'
"""

from lakeless.twin._api import ApiServer, make_app
from lakeless.twin._stage import TwinError, TwinSettings, TwinStage, TwinStats, run_twin
from lakeless.twin._store import (
    DEFAULT_EPISODE_GAP_MS,
    DEFAULT_KEEP_ANOMALIES,
    DEFAULT_KEEP_READINGS,
    AnomalyRow,
    ApplyResult,
    CarState,
    LastAnomaly,
    Reading,
    TwinStore,
)

__all__ = [
    "DEFAULT_EPISODE_GAP_MS",
    "DEFAULT_KEEP_ANOMALIES",
    "DEFAULT_KEEP_READINGS",
    "AnomalyRow",
    "ApiServer",
    "ApplyResult",
    "CarState",
    "LastAnomaly",
    "Reading",
    "TwinError",
    "TwinSettings",
    "TwinStage",
    "TwinStats",
    "TwinStore",
    "make_app",
    "run_twin",
]
