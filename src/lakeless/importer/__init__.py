"""``lakeless import``: replay recorded data (CSV or JSON lines) into a pipeline's raw topic.

Each record keeps its original event time as the Kafka record timestamp and is keyed by its
entity id, exactly as if the device had sent it through the bridge. The importer maps and
converts, it does not judge: a value that is not a number stays a string and a missing cell
stays missing, so that ``preprocess`` dead-letters the record with its reason instead of the
importer dropping it.

CSV mapping (from the pipeline's schema):
    - columns named like the schema's fields, or like one of a field's Avro ``aliases``, are
      that field (the car fleet: ``car`` is ``car_id``, ``time``/``timestamp`` are ``ts``);
      other columns stay as they are (and are dead-lettered as unknown fields);
    - times below 10^11 are seconds (unix time), larger ones milliseconds (``time_unit="auto"``);
    - an empty cell is a missing field; ``null`` or ``none`` (any case) in a nullable field
      (a label, say) is null;
    - a missing sequence is numbered per entity in file order;
    - ``scale`` multiplies numeric fields, e.g. ``{"battery_percentage": 100}`` for data
      recorded as a 0-1 fraction (the talk's recorded CSV).

JSON lines are forwarded byte-for-byte (one event per line); only the key and time fields are
read, for the record key and timestamp.

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.importer import CsvMapping, csv_events
    >>> rows = [{"time": "1567606196", "car": "car1", "speed": "24.9"}]
    >>> list(csv_events(rows, CsvMapping(car_fleet())))[0]
    {'ts': 1567606196000, 'car_id': 'car1', 'speed': 24.9, 'seq': 0}
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.importer._settings import ImportSettings

if TYPE_CHECKING:
    from lakeless.importer._import import (
        CsvMapping,
        ImportFileError,
        ImportStats,
        count_records,
        csv_events,
        import_file,
    )

__all__ = [
    "CsvMapping",
    "ImportFileError",
    "ImportSettings",
    "ImportStats",
    "count_records",
    "csv_events",
    "import_file",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "._import": [
            "CsvMapping",
            "ImportFileError",
            "ImportStats",
            "count_records",
            "csv_events",
            "import_file",
        ]
    },
)
