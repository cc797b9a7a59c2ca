"""The twin's table names per pipeline and their layout (the same in SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
from typing import Final, NamedTuple

__all__ = ["LAYOUT_VERSION", "Tables", "ddl", "table_prefix"]

#: Version of the twin's table layout, stored in ``<p>_meta``.
LAYOUT_VERSION: Final = 2
#: Longest table prefix (without its ``_``): the longest name, ``<prefix>_anomalies_time``, fits
#: PostgreSQL's 63-byte identifiers.
_MAX_PREFIX: Final = 39


def table_prefix(pipeline: str) -> str:
    """The table name prefix of a pipeline's twin: ``car-fleet`` -> ``car_fleet_``.

    Lower case, ``_`` for anything but letters and digits, ``p_`` before a leading digit (an
    SQL name starts with a letter), and a long name shortened with a hash of it, so that every
    table and index name stays within PostgreSQL's 63 bytes. Two names may map to the same
    prefix (``pumps-a``, ``pumps_a``): `TwinStore` refuses the second one it meets.

    Example:
        >>> table_prefix("car-fleet"), table_prefix("2024-Meters")
        ('car_fleet_', 'p_2024_meters_')
    """
    prefix = re.sub(r"[^a-z0-9_]", "_", pipeline.lower())
    if not prefix[:1].isalpha():
        prefix = "p_" + prefix
    if len(prefix) > _MAX_PREFIX:
        digest = hashlib.sha1(pipeline.encode()).hexdigest()[:8]
        prefix = f"{prefix[: _MAX_PREFIX - 9]}_{digest}"
    return prefix + "_"


class Tables(NamedTuple):
    """The four tables of one pipeline's twin."""

    entities: str
    readings: str
    anomalies: str
    meta: str

    @classmethod
    def of(cls, pipeline: str) -> Tables:
        """The tables of ``pipeline``.

        Example:
            >>> Tables.of("pumps").entities
            'pumps_entities'
        """
        p = table_prefix(pipeline)
        return cls(f"{p}entities", f"{p}readings", f"{p}anomalies", f"{p}meta")


def ddl(t: Tables, i: str, r: str, j: str) -> list[str]:
    """``CREATE ... IF NOT EXISTS`` statements of the tables.

    Args:
        t: the tables.
        i: the integer column type (64 bits).
        r: the floating point column type (64 bits).
        j: the JSON document column type.
    """
    return [
        f"CREATE TABLE IF NOT EXISTS {t.meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS {t.entities} (
            entity TEXT PRIMARY KEY,
            last_position {i},
            last_time {i},
            reading {j},
            label TEXT,
            events {i} NOT NULL DEFAULT 0,
            readings_floor {i},
            readings_pruned {i} NOT NULL DEFAULT 0,
            anomalies {i} NOT NULL DEFAULT 0,
            anomalies_floor {i},
            anomalies_pruned {i} NOT NULL DEFAULT 0,
            last_anomaly_position {i},
            last_anomaly_time {i},
            last_anomaly_score {r},
            last_anomaly_threshold {r},
            last_anomaly_model TEXT,
            last_anomaly_version {i},
            last_anomaly_label TEXT,
            episode_since {i},
            episode_anomalies {i} NOT NULL DEFAULT 0,
            episode_open {i} NOT NULL DEFAULT 0
        )""",
        f"""CREATE TABLE IF NOT EXISTS {t.readings} (
            entity TEXT NOT NULL,
            position {i} NOT NULL,
            time {i} NOT NULL,
            reading {j} NOT NULL,
            label TEXT,
            PRIMARY KEY (entity, position)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {t.anomalies} (
            entity TEXT NOT NULL,
            position {i} NOT NULL,
            time {i} NOT NULL,
            score {r},
            threshold {r} NOT NULL,
            model TEXT NOT NULL,
            model_version {i} NOT NULL,
            top_features TEXT NOT NULL,
            label TEXT,
            PRIMARY KEY (entity, position, model, model_version)
        )""",
        f"CREATE INDEX IF NOT EXISTS {t.entities}_open ON {t.entities} (episode_open)",
        f"CREATE INDEX IF NOT EXISTS {t.anomalies}_time ON {t.anomalies} (entity, time)",
    ]
