"""CSV and JSON-lines import: mapping rows to a schema's fields (no broker)."""

from pathlib import Path

import pytest

from lakeless.config import Settings
from lakeless.errors import ConfigError
from lakeless.examples import car_fleet, example_schema
from lakeless.importer import CsvMapping, ImportFileError, ImportSettings, csv_events, import_file
from lakeless.preprocess import Reason, Rejection, Validator
from lakeless.schema import EventCodec

CAR = car_fleet()
PUMPS = example_schema("pumps")


def test_csv_rows_map_to_schema_fields() -> None:
    rows = [
        {"time": "1567606196", "car": "car1", "speed": "24.5", "battery_percentage": "0.5"},
        {"time": "1567606206", "car": "car1", "speed": "oops", "battery_percentage": ""},
        {"time": "1567606196", "car": "car2", "speed": "3", "battery_percentage": "0.25"},
    ]
    events = list(csv_events(rows, CsvMapping(CAR, scale={"battery_percentage": 100})))
    assert events[0] == {
        "ts": 1567606196000, "car_id": "car1", "speed": 24.5, "battery_percentage": 50.0,
        "seq": 0,
    }  # fmt: skip
    # Bad cells are kept as they are (preprocess dead-letters them), empty ones left out.
    assert events[1]["speed"] == "oops" and "battery_percentage" not in events[1]
    assert events[1]["seq"] == 1 and events[2]["seq"] == 0


def test_a_complete_csv_row_is_a_valid_event_and_the_model_defaults() -> None:
    row = {"time": "1567606196", "car": "car1", "failure": "flat_tire"}
    row |= {name: str(CAR.field(name).example) for name in CAR.feature_names}
    (event,) = csv_events([row], CsvMapping(CAR))
    raw = EventCodec(CAR).encode(event)
    decoded = Validator(CAR).validate(raw)
    assert not isinstance(decoded, Rejection), decoded
    assert (decoded.model, decoded.failure, decoded.seq) == ("unknown", "flat_tire", 0)
    for null in ("null", "None", "NULL"):
        (event,) = csv_events([{**row, "failure": null}], CsvMapping(CAR))
        assert event["failure"] is None
    row["bogus"] = "1"
    (event,) = csv_events([row], CsvMapping(CAR))
    result = Validator(CAR).validate(EventCodec(CAR).encode(event))
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (Reason.UNKNOWN_FIELD, "bogus")


def test_another_schema_maps_by_names_and_aliases() -> None:
    row = {"asset": "p-1", "ts": "1700000000", "site": "a", "pump_type": "booster", "fault": "null"}
    row |= {name: "1" for name in PUMPS.feature_names}
    (event,) = csv_events([row], CsvMapping(PUMPS))
    assert event["pump_id"] == "p-1" and event["timestamp"] == 1_700_000_000_000
    assert event["fault"] is None  # a nullable field's null
    assert event["speed_rpm"] == 1 and event["flow_rate"] == 1.0  # an int and a double
    assert "seq" not in event  # no sequence in this schema: nothing is numbered
    assert not isinstance(Validator(PUMPS).validate(EventCodec(PUMPS).encode(event)), Rejection)


def test_time_units() -> None:
    rows = [{"ts": "1700000000000", "car_id": "c", "seq": "4"}]
    assert next(csv_events(rows, CsvMapping(CAR)))["ts"] == 1700000000000
    assert next(csv_events(rows, CsvMapping(CAR, time_unit="s")))["ts"] == 1700000000000000
    assert next(csv_events(rows, CsvMapping(CAR)))["seq"] == 4


def test_scale_must_name_a_numeric_field() -> None:
    with pytest.raises(ConfigError, match="model"):
        CsvMapping(CAR, scale={"model": 2.0})
    assert ImportSettings(scale="speed=3.6, battery_percentage=100").scale == {
        "speed": 3.6,
        "battery_percentage": 100.0,
    }
    with pytest.raises(ValueError, match="FIELD=FACTOR"):
        ImportSettings(scale="speed")


def test_unknown_file_kind_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="no such file"):
        import_file(tmp_path / "nope.csv", Settings())
    bad = tmp_path / "data.parquet"
    bad.write_text("x")
    with pytest.raises(ImportFileError, match=r"\.csv or \.jsonl"):
        import_file(bad, Settings())
    header = tmp_path / "other.csv"
    header.write_text("a,b\n1,2\n")
    with pytest.raises(ImportFileError, match="no column"):
        import_file(header, Settings())
