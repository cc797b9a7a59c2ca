"""The committed test vectors are what tests/vectors/generate.py writes (and stay so)."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lakeless.registry import (
    ModelRecord,
    ModelRejected,
    RegistryState,
    decode_entry,
    decode_summary,
    validate,
)
from lakeless.schema import (
    HEADER,
    BadValue,
    CleanCodec,
    Decoder,
    EventCodec,
    PipelineSchema,
    load_schema,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("lakeless_vectors", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    written = generator.write_all(tmp_path)
    assert written
    for path in written:
        committed = VECTORS / path.name
        if committed.read_bytes() != path.read_bytes():
            pytest.fail(f"{committed} is stale: run .venv/bin/python tests/vectors/generate.py")


def test_the_car_fleet_schema_is_the_packages() -> None:
    import json

    import lakeless

    shipped = Path(lakeless.__file__).parent / "examples" / "car-fleet.avsc"
    if not shipped.is_file():
        pytest.skip("this lakeless ships no examples/car-fleet.avsc yet")
    vector = json.loads((VECTORS / "car-fleet.avsc").read_text())
    assert json.loads(shipped.read_text()) == vector


# ---- the Python implementation against the vectors ---------------------------------------


def _vectors(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def _schemas() -> dict[tuple[str, int], PipelineSchema]:
    out = {}
    for entry in _vectors("schemas.json")["schemas"]:
        value = entry["registry_record"]["value"]
        out[(value["pipeline"], int(value["version"]))] = load_schema(value["schema"])
    return out


def test_fingerprints_headers_and_roles_agree() -> None:
    for entry in _vectors("schemas.json")["schemas"]:
        schema = load_schema(entry["registry_record"]["value"]["schema"])
        assert schema.fingerprint_hex == entry["fingerprint"]
        assert int.from_bytes(schema.fingerprint, "little") == int(entry["fingerprint_value"], 16)
        assert CleanCodec(schema).header.hex() == entry["header_hex"]
        assert list(schema.feature_names) == entry["features"]
        assert list(schema.strings) == entry["strings"]
        assert CleanCodec(schema).dtype.itemsize + HEADER == int(entry["numeric_size"])


def test_clean_records_are_byte_identical_and_decode_as_specified() -> None:
    schemas = _schemas()
    for case in _vectors("clean.json")["cases"]:
        writer = schemas[(case["pipeline"], case["writer_version"])]
        reader = schemas[(case["pipeline"], case["reader_version"])]
        event = EventCodec(writer).decode(case["json"])
        value = CleanCodec(writer).encode(event)
        assert value.hex() == case["clean_hex"], case.get("description", case["key"])
        known = {s.fingerprint: s for (p, _v), s in schemas.items() if p == case["pipeline"]}
        batch = Decoder(reader, known).decode([value])
        decoded = case["decoded"]
        assert batch.time.tolist() == [decoded["time"]]
        sequence = batch.sequence
        assert (sequence.tolist()[0] if sequence is not None else None) == decoded["sequence"]
        features = batch.features(np.float64)[0].tolist()
        assert dict(zip(reader.feature_names, features, strict=True)) == decoded["features"]
        assert {name: values[0] for name, values in batch.strings.items()} == decoded["strings"]


def test_bad_clean_records_are_refused() -> None:
    schemas = _schemas()
    for error in _vectors("clean.json")["errors"]:
        reader = max(
            (s for (p, v), s in schemas.items() if p == error["pipeline"] and v == 1),
            key=lambda s: s.name,
        )
        with pytest.raises(BadValue):
            Decoder(reader).decode([bytes.fromhex(error["clean_hex"])])


def test_registry_verdicts_and_folds_agree() -> None:
    vectors = _vectors("registry.json")
    for record in vectors["records"]:
        entry = decode_entry(base64.b64decode(record["value_b64"]))
        assert isinstance(entry, ModelRecord), record["id"]
        try:
            validate(entry, record["pipeline_features"], record["pipeline"])
            verdict = "accept"
        except ModelRejected as exc:
            verdict = exc.reason
        assert verdict == record["verdict"], f"{record['id']}: {record['description']}"
    for fold in vectors["folds"]:
        state = RegistryState(topic=vectors["topic"])
        live = []
        for offset, name in enumerate(fold["log"]):
            state.apply(decode_summary(base64.b64decode(vectors["entries"][name])), offset)
            live.append(state.live_version(vectors["model"]))
        assert live == fold["live_after_each"], fold["description"]
        for version, stage in fold["stages"].items():
            assert state.stage(vectors["model"], int(version)) == stage, fold["description"]
