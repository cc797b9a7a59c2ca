from pathlib import Path

import pytest

from lakeless.config import Settings
from lakeless.importer import CsvMapping, ImportFileError, csv_events, import_file


def test_csv_rows_map_to_schema_fields() -> None:
    rows = [
        {"time": "1567606196", "car": "car1", "speed": "24.5", "battery_percentage": "0.5"},
        {"time": "1567606206", "car": "car1", "speed": "oops", "battery_percentage": ""},
        {"time": "1567606196", "car": "car2", "speed": "3", "battery_percentage": "0.25"},
    ]
    events = list(csv_events(rows, CsvMapping(scale={"battery_percentage": 100})))
    assert events[0] == {
        "ts": 1567606196000, "car_id": "car1", "speed": 24.5,
        "battery_percentage": 50.0, "seq": 0, "model": "unknown",
    }  # fmt: skip
    # Bad cells are kept as they are (preprocess dead-letters them), empty ones left out.
    assert events[1]["speed"] == "oops" and "battery_percentage" not in events[1]
    assert events[1]["seq"] == 1 and events[2]["seq"] == 0


def test_time_units() -> None:
    rows = [{"ts": "1700000000000", "car_id": "c", "seq": "4"}]
    assert next(csv_events(rows, CsvMapping()))["ts"] == 1700000000000
    assert next(csv_events(rows, CsvMapping(time_unit="s")))["ts"] == 1700000000000000
    assert next(csv_events(rows, CsvMapping()))["seq"] == 4


def test_unknown_file_kind_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="no such file"):
        import_file(tmp_path / "nope.csv", Settings())
    bad = tmp_path / "data.parquet"
    bad.write_text("x")
    with pytest.raises(ImportFileError, match=r"\.csv or \.jsonl"):
        import_file(bad, Settings())
