import msgspec
import numpy as np
import pytest

from lakeless import schema


def test_contract_has_the_talks_18_sensor_fields() -> None:
    assert schema.FEATURES == (
        "coolant_temp", "intake_air_temp", "intake_air_flow_speed", "battery_percentage",
        "battery_voltage", "current_draw", "speed", "engine_vibration_amplitude", "throttle_pos",
        "tire_pressure_1_1", "tire_pressure_1_2", "tire_pressure_2_1", "tire_pressure_2_2",
        "accelerometer_1_1_value", "accelerometer_1_2_value", "accelerometer_2_1_value",
        "accelerometer_2_2_value", "control_unit_firmware",
    )  # fmt: skip
    assert schema.EVENT_FIELDS[:4] == ("car_id", "ts", "seq", "model")
    assert schema.EVENT_FIELDS[-1] == "failure"
    assert all(f.low < f.high and f.unit for f in schema.SENSOR_FIELDS)


def test_ranges_are_enforced_while_decoding() -> None:
    good = schema.decode_event(schema.make_example_json())
    too_fast = msgspec.structs.replace(good, speed=500.0)
    with pytest.raises(msgspec.ValidationError, match="speed"):
        schema.decode_event(schema.encode_event(too_fast))


def test_clean_encoding_round_trips_one_and_many() -> None:
    events = [
        msgspec.structs.replace(
            schema.decode_event(schema.make_example_json(car_id=f"car-{i}", seq=i, ts=1000 + i)),
            speed=float(i),
            failure="tire_pressure" if i % 3 == 0 else None,
        )
        for i in range(50)
    ]
    values = [schema.encode_clean(e) for e in events]
    assert [schema.decode_clean(v) for v in values] == events

    batch = schema.decode_clean_batch(values)
    assert len(batch) == 50
    assert batch.car_id == [e.car_id for e in events]
    assert batch.failure == [e.failure for e in events]
    np.testing.assert_array_equal(batch.numeric["seq"], np.arange(50))
    features = batch.features(np.float64)
    assert features.shape == (50, len(schema.FEATURES))
    np.testing.assert_array_equal(features[:, schema.FEATURES.index("speed")], np.arange(50.0))


def test_clean_decoder_refuses_other_formats() -> None:
    with pytest.raises(ValueError, match="version byte"):
        schema.decode_clean_batch([schema.make_example_json()])
