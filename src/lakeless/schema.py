"""The sensor event: the one data contract every stage derives from.

`SensorEvent` is the JSON object devices send over MQTT and ``sensor-raw`` holds. Its type
annotations carry the physical range and unit of every sensor field, so validation
(``msgspec`` enforces the bounds while decoding), feature lists, and the binary encoding of
``sensor-clean`` all come from this one class.

Units: temperatures in degrees Celsius, speed in m/s, intake air flow in g/s, battery in
percent (0-100) and volts, current in amperes (negative while regenerating), tire pressure
in psi, accelerometers in g, throttle as a fraction (0-1).

``sensor-clean`` holds `encode_clean` records: one version byte, a fixed little-endian
numeric block (``ts``, ``seq``, the 18 sensor fields as float64) that a whole batch decodes
with a single ``numpy.frombuffer``, then the three strings (car id, vehicle model, failure
label), each prefixed by its UTF-8 length as a little-endian uint16. See `decode_clean_batch`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
import numpy as np
from msgspec import Meta

SCHEMA_VERSION: Final = 1

#: Longest accepted car id / vehicle model / failure label, in characters.
MAX_NAME_LEN: Final = 64
#: A car id must be usable as one MQTT topic level (no ``/``, ``+``, ``#``).
CAR_ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]+\Z"  # \Z: "$" would accept a trailing newline

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LEN)]


def _sensor(low: float, high: float, unit: str) -> Meta:
    return Meta(ge=low, le=high, extra={"unit": unit})


class SensorEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """One reading of one car (schema version `SCHEMA_VERSION`).

    Unknown fields are rejected rather than dropped, so that nothing is lost silently: a device
    sending a newer schema is dead-lettered with reason ``unknown_field`` and can be replayed
    from the dead-letter topic once the pipeline knows the new fields.

    Example:
        >>> raw = make_example_json(car_id="car-7", seq=3)
        >>> event = decode_event(raw)
        >>> event.car_id, event.seq, event.failure
        ('car-7', 3, None)
    """

    car_id: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LEN, pattern=CAR_ID_PATTERN)]
    ts: Annotated[int, Meta(ge=0, le=2**63 - 1, description="event time, ms since the epoch (UTC)")]
    seq: Annotated[int, Meta(ge=0, le=2**63 - 1, description="per-car counter")]
    model: Name
    coolant_temp: Annotated[float, _sensor(-50.0, 200.0, "degC")]
    intake_air_temp: Annotated[float, _sensor(-50.0, 100.0, "degC")]
    intake_air_flow_speed: Annotated[float, _sensor(0.0, 1000.0, "g/s")]
    battery_percentage: Annotated[float, _sensor(0.0, 100.0, "%")]
    battery_voltage: Annotated[float, _sensor(0.0, 1000.0, "V")]
    current_draw: Annotated[float, _sensor(-1000.0, 1000.0, "A")]
    speed: Annotated[float, _sensor(0.0, 120.0, "m/s")]
    engine_vibration_amplitude: Annotated[float, _sensor(0.0, 20000.0, "um")]
    throttle_pos: Annotated[float, _sensor(0.0, 1.0, "fraction")]
    tire_pressure_1_1: Annotated[float, _sensor(0.0, 100.0, "psi")]
    tire_pressure_1_2: Annotated[float, _sensor(0.0, 100.0, "psi")]
    tire_pressure_2_1: Annotated[float, _sensor(0.0, 100.0, "psi")]
    tire_pressure_2_2: Annotated[float, _sensor(0.0, 100.0, "psi")]
    accelerometer_1_1_value: Annotated[float, _sensor(-100.0, 100.0, "g")]
    accelerometer_1_2_value: Annotated[float, _sensor(-100.0, 100.0, "g")]
    accelerometer_2_1_value: Annotated[float, _sensor(-100.0, 100.0, "g")]
    accelerometer_2_2_value: Annotated[float, _sensor(-100.0, 100.0, "g")]
    control_unit_firmware: Annotated[float, _sensor(0.0, 2.0**31, "version")]
    failure: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LEN)] | None = None


@dataclass(frozen=True)
class SensorField:
    """A model input: one numeric sensor field with its physical range."""

    name: str
    unit: str
    low: float
    high: float


def _sensor_fields() -> tuple[SensorField, ...]:
    info = msgspec.inspect.type_info(SensorEvent)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = []
    for field in info.fields:
        meta = field.type
        if isinstance(meta, msgspec.inspect.Metadata) and "unit" in (meta.extra or {}):
            kind = meta.type
            assert isinstance(kind, msgspec.inspect.FloatType)
            assert kind.ge is not None and kind.le is not None and meta.extra is not None
            fields.append(SensorField(field.name, meta.extra["unit"], kind.ge, kind.le))
    return tuple(fields)


#: The 18 sensor fields, in schema order: the model's input features.
SENSOR_FIELDS: Final = _sensor_fields()
FEATURES: Final = tuple(f.name for f in SENSOR_FIELDS)
#: Every field of `SensorEvent`, in order.
EVENT_FIELDS: Final = SensorEvent.__struct_fields__
REQUIRED_FIELDS: Final = tuple(f for f in EVENT_FIELDS if f != "failure")

_json_decoder = msgspec.json.Decoder(SensorEvent)
_json_encoder = msgspec.json.Encoder()


def decode_event(raw: bytes | str) -> SensorEvent:
    """Decode and validate one JSON sensor event.

    Raises:
        msgspec.ValidationError: a field is missing, unknown, of the wrong type or out of range.
        msgspec.DecodeError: the bytes are not JSON.
    """
    return _json_decoder.decode(raw)


def encode_event(event: SensorEvent) -> bytes:
    """Encode one event as compact JSON (the ``sensor-raw`` / MQTT format)."""
    return _json_encoder.encode(event)


#: A plausible healthy reading of every sensor field, for examples and tests.
EXAMPLE_READING: Final[dict[str, float]] = {
    "coolant_temp": 88.0,
    "intake_air_temp": 24.0,
    "intake_air_flow_speed": 120.0,
    "battery_percentage": 76.0,
    "battery_voltage": 380.0,
    "current_draw": 42.0,
    "speed": 25.0,
    "engine_vibration_amplitude": 2500.0,
    "throttle_pos": 0.3,
    "tire_pressure_1_1": 32.0,
    "tire_pressure_1_2": 32.0,
    "tire_pressure_2_1": 33.0,
    "tire_pressure_2_2": 33.0,
    "accelerometer_1_1_value": 0.4,
    "accelerometer_1_2_value": 0.4,
    "accelerometer_2_1_value": 0.4,
    "accelerometer_2_2_value": 0.4,
    "control_unit_firmware": 2000.0,
}


def make_example_json(car_id: str = "car-1", seq: int = 0, ts: int = 1_700_000_000_000) -> bytes:
    """A valid, healthy JSON event; handy in docs and tests."""
    return _json_encoder.encode(
        {"car_id": car_id, "ts": ts, "seq": seq, "model": "e-sedan", **EXAMPLE_READING}
    )


# ---- sensor-clean binary encoding -------------------------------------------------------------

CLEAN_VERSION: Final = 1
#: Numeric block of a ``sensor-clean`` record; a batch of blocks is one numpy structured array.
CLEAN_DTYPE: Final = np.dtype(
    [("ts", "<i8"), ("seq", "<i8")] + [(name, "<f8") for name in FEATURES]
)
_NUMERIC = struct.Struct("<qq" + "d" * len(FEATURES))
_BLOCK_END: Final = 1 + CLEAN_DTYPE.itemsize
_LENGTH = struct.Struct("<H")
_NULL: Final = 0xFFFF  # length meaning "no string" (failure = None)


def encode_clean(event: SensorEvent) -> bytes:
    """Encode a validated event in the ``sensor-clean`` binary layout."""
    values = msgspec.structs.astuple(event)  # car_id, ts, seq, model, *features, failure
    parts = [bytes((CLEAN_VERSION,)), _NUMERIC.pack(*values[1:3], *values[4:-1])]
    for text in (event.car_id, event.model, event.failure):
        if text is None:
            parts.append(_LENGTH.pack(_NULL))
        else:
            data = text.encode()
            parts.append(_LENGTH.pack(len(data)) + data)
    return b"".join(parts)


def _strings(value: bytes) -> tuple[str, str, str | None]:
    out: list[str | None] = []
    pos = _BLOCK_END
    for _ in range(3):
        (size,) = _LENGTH.unpack_from(value, pos)
        pos += 2
        if size == _NULL:
            out.append(None)
        else:
            out.append(value[pos : pos + size].decode())
            pos += size
    car_id, model, failure = out
    assert car_id is not None and model is not None
    return car_id, model, failure


def decode_clean(value: bytes) -> SensorEvent:
    """Decode one ``sensor-clean`` record back into a `SensorEvent`."""
    _check_version(value)
    ts, seq, *features = _NUMERIC.unpack_from(value, 1)
    car_id, model, failure = _strings(value)
    return SensorEvent(car_id, ts, seq, model, *features, failure=failure)  # type: ignore[misc]


def _check_version(value: bytes) -> None:
    if not value or value[0] != CLEAN_VERSION:
        got = value[0] if value else "empty"
        raise ValueError(f"not a sensor-clean v{CLEAN_VERSION} record (version byte {got})")


@dataclass(frozen=True)
class CleanBatch:
    """A batch of ``sensor-clean`` records decoded column-wise.

    Attributes:
        numeric: structured array with ``ts``, ``seq`` and every feature (`CLEAN_DTYPE`).
        car_id: car id per record.
        model: vehicle model per record.
        failure: failure label per record (``None`` when healthy or unlabelled).
    """

    numeric: np.ndarray
    car_id: list[str]
    model: list[str]
    failure: list[str | None]

    def __len__(self) -> int:
        return len(self.numeric)

    def features(self, dtype: type[np.floating] = np.float32) -> np.ndarray:
        """The feature matrix, shape ``(n, len(FEATURES))``."""
        return np.stack([self.numeric[name] for name in FEATURES], axis=1).astype(dtype)


def decode_clean_batch(values: list[bytes], strings: bool = True) -> CleanBatch:
    """Decode many ``sensor-clean`` records at once (one ``frombuffer`` for all numbers).

    Args:
        values: record values as read from Kafka.
        strings: also decode car id, model and label (skip when only numbers are needed).
    """
    for value in values:
        _check_version(value)
    block = b"".join([value[1:_BLOCK_END] for value in values])
    numeric = np.frombuffer(block, dtype=CLEAN_DTYPE)
    if not strings:
        return CleanBatch(numeric, [], [], [])
    decoded = [_strings(value) for value in values]
    return CleanBatch(
        numeric,
        [d[0] for d in decoded],
        [d[1] for d in decoded],
        [d[2] for d in decoded],
    )
