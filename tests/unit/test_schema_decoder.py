"""The clean-record `Decoder` against a reference reading of the layout, bad values, old versions.

The reference decoder below reads one record at a time with `struct`, straight from the table
of ``docs/data-contract.md`` §3, so the vectorized decoder is checked against the contract and
not against itself.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from lakeless.config import Settings
from lakeless.examples import car_fleet, example_schema
from lakeless.fleet import Fleet
from lakeless.pipeline import Pipeline
from lakeless.schema import (
    HEADER,
    BadValue,
    CleanBatch,
    CleanCodec,
    Decoder,
    EventCodec,
    PipelineSchema,
    concat,
    load_schema,
)
from lakeless.testing.events import encode_event, example_values

CAR = car_fleet()
PUMPS = example_schema("pumps")


def reference(schema: PipelineSchema, value: bytes) -> dict[str, Any]:
    """One clean record as a dict, read field by field as the data contract lays it out."""
    assert value[0] == 2 and value[1:9] == schema.fingerprint
    out: dict[str, Any] = {}
    pos = 9
    (out[schema.time],) = struct.unpack_from("<q", value, pos)
    pos += 8
    if schema.sequence is not None:
        (out[schema.sequence],) = struct.unpack_from("<q", value, pos)
        pos += 8
    for name in schema.feature_names:
        (out[name],) = struct.unpack_from("<d", value, pos)
        pos += 8
    for name in schema.strings:
        (size,) = struct.unpack_from("<H", value, pos)
        pos += 2
        if size == 0xFFFF:
            out[name] = None
        else:
            out[name] = value[pos : pos + size].decode()
            pos += size
    assert pos == len(value)
    return out


def as_rows(batch: CleanBatch) -> list[dict[str, Any]]:
    schema = batch.schema
    names = [n for n in batch.numeric.dtype.names or ()]
    return [
        {
            **{n: batch.numeric[n][i].item() for n in names},
            **{n: batch.strings[n][i] for n in schema.strings},
        }
        for i in range(len(batch))
    ]


def values(count: int = 300) -> list[bytes]:
    fleet = Fleet(40, seed=2, start=0, failure_rate=50.0, ramp=1.0)
    codec = CleanCodec(CAR)
    out: list[bytes] = []
    while len(out) < count:
        out += [codec.encode(e) for e in fleet.step().events()]
    return out[:count]


def pump_values(count: int) -> list[bytes]:
    codec, events = CleanCodec(PUMPS), EventCodec(PUMPS)
    rng = np.random.default_rng(1)
    return [
        codec.encode(
            events.from_dict(
                example_values(
                    PUMPS,
                    pump_id=f"p-{i % 7}",
                    timestamp=1_700_000_000_000 + i,
                    flow_rate=float(rng.uniform(0, 500)),
                    speed_rpm=int(rng.integers(0, 4000)),
                    fault=None if i % 3 else "cavitation",
                    pump_type="booster" if i % 2 else "centrifugal",
                )
            )
        )
        for i in range(count)
    ]


def test_decoder_matches_the_reference_reading() -> None:
    raw = values()
    want = [reference(CAR, v) for v in raw]
    decoder = Decoder(CAR)
    for _ in range(2):  # the second time the strings come from the memo
        got = decoder.decode(raw)
        assert as_rows(got) == want
        assert got.key == [w["car_id"] for w in want]
        assert got.label == [w["failure"] for w in want]
        assert got.sequence is not None and got.sequence.tolist() == [w["seq"] for w in want]
        assert got.position.tolist() == got.sequence.tolist()
    assert any(w["failure"] for w in want)
    numbers_only = decoder.decode(raw, strings=False)
    assert numbers_only.numeric.tobytes() == got.numeric.tobytes()
    assert numbers_only.strings == {"car_id": [], "model": [], "failure": []}
    assert len(decoder.decode([])) == 0


def test_another_shape_decodes_too() -> None:
    raw = pump_values(50)
    got = Decoder(PUMPS).decode(raw)
    assert as_rows(got) == [reference(PUMPS, v) for v in raw]
    assert got.sequence is None and got.position.tolist() == got.time.tolist()
    assert got.numeric.dtype["speed_rpm"] == np.float64  # ints become exact float64 features
    assert got.strings["pump_type"][:2] == ["centrifugal", "booster"]


def test_features_are_the_feature_columns_in_schema_order() -> None:
    batch = Decoder(CAR).decode(values())
    for dtype in (np.float32, np.float64):
        got = batch.features(dtype)
        assert got.dtype == dtype and got.shape == (len(batch), len(CAR.feature_names))
        stacked = np.stack([batch.numeric[n] for n in CAR.feature_names], axis=1).astype(dtype)
        assert np.array_equal(got, stacked)
    part = batch.take(3, 10)
    assert np.array_equal(part.features(), batch.features()[3:10]) and part.key == batch.key[3:10]
    picked = batch.select([5, 1])
    assert np.array_equal(picked.features(), batch.features()[[5, 1]])
    assert picked.key == [batch.key[5], batch.key[1]]
    assert np.array_equal(concat([batch.take(0, 4), batch.take(4, 9)]).numeric, batch.numeric[:9])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (None, r"no value \(a tombstone\)"),
        (b"\x01abc", "layout version byte 1, expected 2"),
        (b"\x02" + CAR.fingerprint + b"\x00" * 20, r"too short for a clean record \(29 bytes\)"),
    ],
)
def test_decoder_locates_bad_values(bad: bytes | None, reason: str) -> None:
    raw: list[bytes] = values(10)
    raw.insert(4, bad)  # type: ignore[arg-type]
    with pytest.raises(BadValue, match=reason) as info:
        Decoder(CAR).decode(raw)
    assert info.value.index == 4
    batch, kept, problems = Decoder(CAR).decode_valid(raw)
    assert len(batch) == 10 and kept == [i for i in range(11) if i != 4]
    assert [(p.index, p.reason) for p in problems] == [(4, problems[0].reason)]


def test_decoder_rejects_bad_strings_and_json() -> None:
    good = values(3)
    truncated = good[1][:-1]
    with pytest.raises(BadValue, match="bad strings") as info:
        Decoder(CAR).decode([good[0], truncated])
    assert info.value.index == 1
    with pytest.raises(BadValue, match="trailing bytes"):
        Decoder(CAR).decode([good[0] + b"x"])
    json_event = encode_event(next(iter(Fleet(1, seed=1, start=0).step().events())))
    with pytest.raises(BadValue, match="version byte 123"):
        Decoder(CAR).decode([json_event])
    head = CleanCodec(CAR).head
    tail = good[0][head:]
    key_end = 2 + int.from_bytes(tail[:2], "little")
    null_key = good[0][:head] + b"\xff\xff" + tail[key_end:]
    with pytest.raises(BadValue, match="key"):
        Decoder(CAR).decode([null_key])


def test_a_record_of_another_schema_names_both_fingerprints() -> None:
    pump = pump_values(1)[0]
    car = values(2)
    pipeline = Pipeline.builtin(Settings())
    with pytest.raises(BadValue) as info:
        pipeline.decoder().decode([car[0], pump, car[1]])
    assert info.value.index == 1
    message = info.value.reason
    assert PUMPS.fingerprint_hex in message and f"v1 ({CAR.fingerprint_hex})" in message
    assert "not a registered version" in message
    # The same without a pipeline to name the versions.
    with pytest.raises(BadValue, match=CAR.fingerprint_hex):
        Decoder(CAR).decode([pump])


# ---- older registered versions ------------------------------------------------------------------


def v2_of_the_car_fleet() -> PipelineSchema:
    raw = dict(CAR.raw)
    raw["lakeless"] = {**raw["lakeless"], "context": ["model", "region"]}
    raw["fields"] = [
        *raw["fields"][:-1],
        {"name": "humidity", "type": "double", "unit": "%", "min": 0, "max": 100, "default": 40.0},
        {"name": "region", "type": "string", "default": "eu"},
        raw["fields"][-1],
    ]
    return load_schema(raw)


def test_a_mixed_batch_of_two_versions_decodes_onto_the_current_one() -> None:
    v2 = v2_of_the_car_fleet()
    assert v2.feature_names == (*CAR.feature_names, "humidity")
    pipeline = Pipeline.builtin(Settings())
    pipeline = Pipeline(pipeline.name, (*pipeline.versions, pipeline.with_version(v2)))
    old = values(6)
    codec, events = CleanCodec(v2), EventCodec(v2)
    new = [
        codec.encode(
            events.from_dict(
                example_values(v2, car_id=f"new-{i}", seq=100 + i, humidity=10.0 * i, region="us")
            )
        )
        for i in range(4)
    ]
    mixed = [old[0], new[0], new[1], old[1], old[2], new[2], old[3], old[4], new[3], old[5]]
    batch = pipeline.decoder().decode(mixed)
    assert batch.schema == v2 and len(batch) == 10
    for i, value in enumerate(mixed):
        row = as_rows(batch.select([i]))[0]
        if value[1:HEADER] == v2.fingerprint:
            assert row == reference(v2, value)
        else:
            old_row = reference(CAR, value)
            assert row == {**old_row, "humidity": 40.0, "region": "eu"}  # the defaults
    assert batch.features().shape == (10, len(v2.feature_names))
    numbers = pipeline.decoder().decode(mixed, strings=False)
    assert numbers.numeric.tobytes() == batch.numeric.tobytes()
    # An old version alone decodes onto the new schema as well.
    only_old = pipeline.decoder().decode(old)
    assert only_old.strings["region"] == ["eu"] * 6
    assert np.array_equal(only_old.numeric["humidity"], np.full(6, 40.0))
    # A bad record inside a mixed batch is located in the whole batch.
    with pytest.raises(BadValue) as info:
        pipeline.decoder().decode([old[0], new[0], new[1][:-3], old[1]])
    assert info.value.index == 2


def test_a_reader_of_v1_refuses_v2_records() -> None:
    v2 = v2_of_the_car_fleet()
    record = CleanCodec(v2).encode(EventCodec(v2).from_dict(example_values(v2)))
    with pytest.raises(BadValue) as info:
        Pipeline.builtin(Settings()).decoder().decode([record])
    assert v2.fingerprint_hex in info.value.reason and CAR.fingerprint_hex in info.value.reason
