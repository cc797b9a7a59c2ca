"""The data contract: schema files, the generated event type, the clean layout, evolution."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import numpy as np
import pytest

from lakeless.examples import car_fleet, example_schema, schema_path
from lakeless.schema import (
    HEADER,
    BadValue,
    CleanCodec,
    Decoder,
    EventCodec,
    SchemaError,
    check_evolution,
    load_schema,
)
from lakeless.schema.outputs import OutputCodec, TopFeature
from lakeless.testing.events import encode_clean, example_event

METER: dict[str, Any] = {
    "type": "record",
    "name": "Meter",
    "namespace": "test.meters",
    "lakeless": {"key": "meter", "time": "at", "label": "state", "context": ["zone"]},
    "fields": [
        {"name": "meter", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "zone", "type": ["null", "string"], "default": None},
        {"name": "kwh", "type": "double", "unit": "kWh", "min": 0, "max": 1e6},
        {"name": "phases", "type": "int", "unit": "count", "min": 1, "max": 3},
        {"name": "tripped", "type": "boolean"},
        {"name": "state", "type": ["null", "string"], "default": None},
        {"name": "note", "type": "string", "default": ""},
    ],
}


def meter(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(METER)
    raw.update(changes)
    return raw


def test_roles_features_and_strings_come_from_the_file() -> None:
    schema = load_schema(METER)
    roles = (schema.key, schema.time, schema.sequence, schema.label)
    assert roles == ("meter", "at", None, "state")
    assert schema.context == ("zone",)
    assert schema.feature_names == ("kwh", "phases", "tripped")
    assert schema.strings == ("meter", "zone", "state")
    assert schema.ignored == ("note",)
    assert schema.field("kwh").unit == "kWh"
    assert schema.field("meter").pattern is not None  # the key's default pattern


def test_the_fingerprint_is_avro_s_and_ignores_units_and_ranges() -> None:
    schema = load_schema(METER)
    assert len(schema.fingerprint) == 8 and schema.fingerprint_hex == schema.fingerprint.hex()
    changed = meter()
    changed["fields"][3] = {**changed["fields"][3], "unit": "MWh", "max": 5}
    assert load_schema(changed).fingerprint == schema.fingerprint
    renamed = meter()
    renamed["fields"][3] = {**renamed["fields"][3], "name": "kwh2"}
    renamed["lakeless"] = METER["lakeless"]
    assert load_schema(renamed).fingerprint != schema.fingerprint


def test_the_packaged_examples_load() -> None:
    fleet = car_fleet()
    assert len(fleet.features) == 18 and fleet.sequence == "seq" and fleet.label == "failure"
    assert load_schema(schema_path("car-fleet")) == fleet
    pumps = example_schema("pumps")
    assert pumps.sequence is None and pumps.field("fault").symbols is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "enum"}, "Avro record"),
        ({"lakeless": None}, '"lakeless" attribute'),
        ({"lakeless": {"key": "meter"}}, '"time"'),
        ({"lakeless": {"key": "nope", "time": "at"}}, "not a field"),
        ({"lakeless": {"key": "kwh", "time": "at"}}, "must be a string"),
        ({"lakeless": {"key": "meter", "time": "zone"}}, "must be an int or long"),
        ({"lakeless": {"key": "meter", "time": "at", "colour": "x"}}, "unknown key"),
        ({"lakeless": {"key": "meter", "time": "at", "label": "meter"}}, "two roles"),
        ({"fields": []}, "no fields"),
    ],
)
def test_malformed_schemas_are_refused_with_a_message(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        load_schema(meter(**change))


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"name": "gps", "type": {"type": "array", "items": "double"}}, "flat records"),
        ({"name": "v", "type": ["null", "double"], "default": None}, "nullable number"),
        ({"name": "v", "type": "double", "min": 5, "max": 1}, "min 5 is above max 1"),
        ({"name": "v", "type": "double", "min": "low"}, "finite number"),
        ({"name": "v", "type": "string", "maxLength": 0}, "maxLength"),
        ({"name": "v", "type": "string", "pattern": "("}, "bad pattern"),
        ({"name": "v", "type": {"type": "int", "logicalType": "date"}}, "not supported"),
    ],
)
def test_unsupported_fields_name_the_field(field: dict[str, Any], message: str) -> None:
    raw = meter()
    raw["fields"].append(field)
    with pytest.raises(SchemaError, match=message) as caught:
        load_schema(raw)
    assert "'" + field["name"] + "'" in str(caught.value) or message in str(caught.value)


def test_a_schema_file_that_is_not_json_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "bad.avsc"
    path.write_text("{ not json")
    with pytest.raises(SchemaError, match="not JSON"):
        load_schema(path)
    with pytest.raises(SchemaError, match="cannot read"):
        load_schema(tmp_path / "missing.avsc")


def test_events_validate_against_the_generated_type() -> None:
    schema = load_schema(METER)
    codec = EventCodec(schema)
    event = codec.decode(
        b'{"meter": "m-1", "at": 1700000000000, "kwh": 3.5, "phases": 3, "tripped": false}'
    )
    assert (event.zone, event.state, event.note) == (None, None, "")  # defaults
    for bad in (
        b'{"meter": "m-1", "at": 1, "kwh": -1, "phases": 3, "tripped": false}',  # range
        b'{"meter": "m 1", "at": 1, "kwh": 1, "phases": 3, "tripped": false}',  # key pattern
        b'{"meter": "m-1", "at": 1, "kwh": 1, "phases": 3.0, "tripped": false}',  # int
        b'{"meter": "m-1", "at": 1, "kwh": 1, "phases": 3, "tripped": false, "x": 1}',
    ):
        with pytest.raises(msgspec.ValidationError):
            codec.decode(bad)


def test_clean_records_round_trip_for_every_shape() -> None:
    for schema in (car_fleet(), example_schema("pumps"), load_schema(METER)):
        event = example_event(schema)
        value = encode_clean(event, schema)
        assert value[0] == 2 and value[1:HEADER] == schema.fingerprint
        batch = Decoder(schema).decode([value, value])
        assert batch.key == [getattr(event, schema.key)] * 2
        expected = [float(getattr(event, name)) for name in schema.feature_names]
        np.testing.assert_array_equal(batch.features(np.float64)[0], expected)
        assert batch.time.tolist() == [getattr(event, schema.time)] * 2
        for name in schema.strings:
            assert batch.strings[name] == [getattr(event, name)] * 2


def test_a_batch_decodes_with_one_frombuffer_and_the_features_are_a_view() -> None:
    schema = car_fleet()
    codec = CleanCodec(schema)
    numeric = np.zeros(3, codec.dtype)
    numeric["seq"] = [1, 2, 3]
    numeric["speed"] = [10.0, 20.0, 30.0]
    values = codec.encode_columns(numeric, [("car-1", "e-sedan", None)] * 3)
    batch = Decoder(schema).decode(values, strings=False)
    assert batch.strings[schema.key] == []  # not decoded
    assert batch.features()[:, schema.feature_names.index("speed")].tolist() == [10, 20, 30]
    assert batch.sequence is not None and batch.sequence.tolist() == [1, 2, 3]


def test_bad_values_are_located_and_explained() -> None:
    schema = car_fleet()
    good = encode_clean(example_event(schema))
    decoder = Decoder(schema)
    cases = [
        (None, "tombstone"),
        (b"\x01" + good[1:], "layout version byte 1"),
        (good[:20], "too short"),
        (good[:-1], "bad strings"),
        (b"\x02" + bytes(8) + good[HEADER:], "not a registered version"),
    ]
    for value, reason in cases:
        with pytest.raises(BadValue, match=reason) as caught:
            decoder.decode([good, value])  # type: ignore[list-item]
        assert caught.value.index == 1
    batch, kept, problems = decoder.decode_valid([good, None, good])
    assert kept == [0, 2] and len(batch) == 2 and problems[0].index == 1


def test_an_unknown_fingerprint_names_both() -> None:
    fleet, pumps = car_fleet(), example_schema("pumps")
    value = encode_clean(example_event(pumps), pumps)
    with pytest.raises(BadValue) as caught:
        Decoder(fleet).decode([value])
    assert pumps.fingerprint_hex in caught.value.reason
    assert fleet.fingerprint_hex in caught.value.reason


def test_records_of_an_older_version_decode_with_the_new_fields_default() -> None:
    old = load_schema(METER)
    raw = meter()
    raw["fields"].insert(5, {"name": "volts", "type": "double", "unit": "V", "default": 230.0})
    new = load_schema(raw)
    check_evolution([old], new)
    old_value = encode_clean(example_event(old, kwh=7.0), old)
    new_value = encode_clean(example_event(new, kwh=8.0, volts=231.0), new)
    decoder = Decoder(new, {old.fingerprint: old})
    batch = decoder.decode([old_value, new_value, old_value])
    assert batch.numeric["kwh"].tolist() == [7.0, 8.0, 7.0]
    assert batch.numeric["volts"].tolist() == [230.0, 231.0, 230.0]
    assert batch.key == ["example-1"] * 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.append({"name": "extra", "type": "double"}), "has no default"),
        (lambda f: f.__setitem__(3, {**f[3], "type": "string"}), "changes type"),
        (lambda f: f.__setitem__(2, {**f[2], "type": "string", "default": ""}), "nullable"),
    ],
)
def test_incompatible_evolution_is_refused(edit: Any, message: str) -> None:
    raw = meter()
    edit(raw["fields"])
    with pytest.raises(SchemaError, match=message):
        check_evolution([load_schema(METER)], load_schema(raw))


def test_promotions_and_dropping_unused_fields_are_compatible() -> None:
    raw = meter()
    raw["fields"][4] = {**raw["fields"][4], "type": "long"}  # int -> long
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "note"]
    check_evolution([load_schema(METER)], load_schema(raw), {"m:1": ("kwh", "phases")})


def test_roles_cannot_change() -> None:
    raw = meter(lakeless={**METER["lakeless"], "key": "note"})
    raw["fields"][0] = {"name": "meter", "type": "string"}
    with pytest.raises(SchemaError, match="key field changes"):
        check_evolution([load_schema(METER)], load_schema(raw))
    same_fields = meter(lakeless={**METER["lakeless"], "context": []})
    with pytest.raises(SchemaError, match="roles differ"):
        check_evolution([load_schema(METER)], load_schema(same_fields))


def test_output_records_use_the_schema_s_names() -> None:
    pumps = example_schema("pumps")
    codec = OutputCodec(pumps)
    anomaly = codec.anomaly(
        key="pump-1",
        time=5,
        sequence=99,  # dropped: the schema has no sequence
        score=float("inf"),
        threshold=1.0,
        model="m",
        model_version=2,
        top_features=[TopFeature("flow_rate", 1.0, 2.0)],
        label="cavitation",
        source="pumps.clean[0]@3",
    )
    data = json.loads(codec.encode(anomaly).replace(b"Infinity", b"1e999"))
    assert data["pump_id"] == "pump-1" and data["timestamp"] == 5 and data["fault"] == "cavitation"
    assert "sequence" not in data and "seq" not in data
    assert codec.decode_anomaly(codec.encode(anomaly)).sequence is None
