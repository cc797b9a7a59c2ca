"""Model registry without a broker: record format, the fold of the log, validation, CLI parsing."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import msgspec
import pytest
import typer

from lakeless.examples import car_fleet
from lakeless.kafka._topics import MODELS_MAX_MESSAGE_BYTES
from lakeless.registry import (
    FORMAT_VERSION,
    MAX_RECORD_BYTES,
    ModelNotFoundError,
    ModelRecord,
    ModelRejected,
    ModelSummary,
    RecordFormatError,
    RegistryState,
    StageChange,
    build_record,
    decode_entry,
    decode_summary,
    encode_entry,
    model_bytes,
    validate,
)
from lakeless.registry._record import LEGACY_PIPELINE, headers_for
from lakeless.registry.cli import parse_ref
from lakeless.testing.models import FEATURES, make_test_onnx

FINGERPRINT = car_fleet().fingerprint_hex

LINEAGE = {
    "topic": "sensor-clean",
    "partitions": {"0": [0, 1200], "1": [5, 980]},
    "start_ms": 1_700_000_000_000,
    "end_ms": 1_700_000_600_000,
    "resolved_at": 1_700_000_700_000,
}


def record(
    version: int = 1, *, name: str = "car-ae", bias: float = 0.0, **kw: object
) -> ModelRecord:
    defaults: dict[str, object] = {
        "threshold": 2.5,
        "normalization": {"mean": [0.0] * 18, "variance": [1.0] * 18},
        "metrics": {"auc": 0.97, "per_failure": {"overheat": 0.9}},
        "lineage": LINEAGE,
        "frameworks": {"tensorflow": "2.18.0"},
        "params": {"epochs": 20, "layers": [16, 8, 16]},
        "report": {"loss": [0.5, 0.2]},
        "description": "test",
        "created_at": 1_700_000_000_000 + version,
        "features": FEATURES,
        "pipeline": "car-fleet",
        "schema_fingerprint": FINGERPRINT,
    }
    defaults.update(kw)
    return build_record(name, version, make_test_onnx(bias=bias), **defaults)  # type: ignore[arg-type]


def stage(version: int, to: str = "live", name: str = "car-ae") -> StageChange:
    return StageChange(name=name, version=version, stage=to, at=1_800_000_000_000 + version)  # type: ignore[arg-type]


# ---- record format ------------------------------------------------------------------------------


def test_build_record_fills_checksum_schema_and_frameworks() -> None:
    rec = record()
    data = make_test_onnx()
    assert rec.onnx == data
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert rec.size == len(data)
    assert rec.features == FEATURES
    assert (rec.pipeline, rec.schema_fingerprint) == ("car-fleet", FINGERPRINT)
    assert rec.schema_version is None
    assert rec.format_version == FORMAT_VERSION == 2
    assert rec.frameworks["tensorflow"] == "2.18.0"
    assert {"python", "onnxruntime"} <= set(rec.frameworks)


def test_model_record_round_trips_with_raw_onnx_bytes() -> None:
    rec = record()
    value = encode_entry(rec)
    assert rec.onnx is not None and rec.onnx in value  # raw bytes, not base64
    assert decode_entry(value) == rec
    assert msgspec.msgpack.decode(value)["kind"] == "model"


def test_stage_change_round_trips() -> None:
    change = stage(3)
    value = encode_entry(change)
    assert decode_entry(value) == change
    assert decode_summary(value) == change


def test_summary_decoding_skips_the_onnx_bytes() -> None:
    rec = record()
    summary = decode_summary(encode_entry(rec))
    assert type(summary) is ModelSummary
    assert summary == rec.summary()
    assert not hasattr(summary, "onnx")


def test_unknown_fields_from_a_newer_writer_are_ignored() -> None:
    raw = msgspec.msgpack.decode(encode_entry(record()))
    raw["new_field"] = {"added": "later"}
    assert decode_entry(msgspec.msgpack.encode(raw)) == record()


def test_a_format_1_record_is_a_car_fleet_model() -> None:
    raw = msgspec.msgpack.decode(encode_entry(record()))
    del raw["pipeline"], raw["schema_fingerprint"]
    raw.update(format_version=1, schema_version=1)
    old = decode_entry(msgspec.msgpack.encode(raw))
    assert isinstance(old, ModelRecord)
    assert (old.pipeline, old.schema_version, old.format_version) == (LEGACY_PIPELINE, 1, 1)
    validate(old, FEATURES, "car-fleet")
    assert rejected(old, features=FEATURES, pipeline="pumps").reason == "pipeline"


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\xc1garbage",
        msgspec.msgpack.encode({"kind": "alias", "name": "x"}),
        msgspec.msgpack.encode({"kind": "model", "name": "x"}),  # required fields missing
        msgspec.msgpack.encode([1, 2, 3]),
    ],
)
def test_undecodable_values_raise_record_format_error(value: bytes) -> None:
    with pytest.raises(RecordFormatError):
        decode_entry(value)
    with pytest.raises(RecordFormatError):
        decode_summary(value)


def test_headers_name_kind_model_and_version() -> None:
    assert headers_for(record(7)) == [
        ("lakeless.kind", b"model"),
        ("lakeless.name", b"car-ae"),
        ("lakeless.version", b"7"),
    ]
    assert headers_for(stage(2))[0] == ("lakeless.kind", b"stage")


@pytest.mark.parametrize("name", ["", "a:b", "-x", "a b", "x" * 129, "a/b"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid model name"):
        build_record(name, 1, b"x", threshold=1.0, features=FEATURES)


def test_version_must_be_positive() -> None:
    with pytest.raises(ValueError, match="version"):
        build_record("m", 0, b"x", threshold=1.0, features=FEATURES)


def test_record_size_limit_matches_the_topic_config() -> None:
    assert MAX_RECORD_BYTES == MODELS_MAX_MESSAGE_BYTES


# ---- the fold -----------------------------------------------------------------------------------


def fold(*entries: ModelSummary | StageChange) -> RegistryState:
    state = RegistryState(topic="models")
    for offset, entry in enumerate(entries):
        state.apply(entry, offset)
    return state


def test_fold_assigns_stages_and_next_version() -> None:
    state = fold(record(1), record(2), record(1, name="other"))
    assert state.versions("car-ae") == [1, 2]
    assert state.next_version("car-ae") == 3
    assert state.next_version("new") == 1
    assert state.names() == ["car-ae", "other"]
    assert state.live_version("car-ae") is None
    assert [s.stage for s in state.summaries("car-ae")] == ["candidate", "candidate"]
    assert state.end == 3


def test_promotion_archives_the_previous_live_version() -> None:
    state = fold(record(1), stage(1), record(2), stage(2))
    assert state.live_version("car-ae") == 2
    assert state.stage("car-ae", 1) == "archived"
    assert state.stage("car-ae", 2) == "live"
    assert [s.stage for s in state.summaries()] == ["archived", "live"]


def test_rollback_is_promoting_an_older_version() -> None:
    state = fold(record(1), stage(1), record(2), stage(2), stage(1))
    assert state.live_version("car-ae") == 1
    assert state.stage("car-ae", 2) == "archived"
    assert state.live_history["car-ae"] == [1, 2, 1]


def test_registering_live_promotes_at_once() -> None:
    state = fold(record(1), stage(1), record(2, stage="live"))
    assert state.live_version("car-ae") == 2
    assert state.stage("car-ae", 1) == "archived"


def test_names_are_independent() -> None:
    state = fold(record(1), stage(1), record(1, name="other"), stage(1, name="other"))
    assert state.live == {"car-ae": 1, "other": 1}


def test_demoting_the_live_version_leaves_no_live_version() -> None:
    state = fold(record(1), stage(1), stage(1, "archived"))
    assert state.live_version("car-ae") is None
    assert state.stage("car-ae", 1) == "archived"


def test_duplicate_version_keeps_the_lowest_offset(caplog: pytest.LogCaptureFixture) -> None:
    first, second = record(1, bias=0.0), record(1, bias=1.0)
    state = fold(first, second)
    assert state.offsets[("car-ae", 1)] == 0
    assert state.models[("car-ae", 1)].sha256 == first.sha256
    assert "ignoring duplicate model car-ae v1 at models[0]@1" in caplog.text


def test_stage_change_of_unknown_version_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    state = fold(record(1), stage(5))
    assert state.live_version("car-ae") is None
    assert "ignoring stage change of unknown model car-ae v5" in caplog.text


def test_stage_change_before_its_model_is_ignored() -> None:
    state = fold(stage(1), record(1))
    assert state.live_version("car-ae") is None


def test_resolve_versions() -> None:
    state = fold(record(1), record(2), record(3), stage(2))
    assert state.resolve("car-ae") == 2  # live
    assert state.resolve("car-ae", "latest") == 3
    assert state.resolve("car-ae", "live") == 2
    assert state.resolve("car-ae", 1) == 1
    assert state.resolve("car-ae", "3") == 3
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        state.resolve("car-ae", 9)
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        state.resolve("nope")
    assert fold(record(1), record(2)).resolve("car-ae") == 2  # no live: latest
    with pytest.raises(ModelNotFoundError, match="no live version"):
        fold(record(1)).resolve("car-ae", "live")


# ---- validation ---------------------------------------------------------------------------------


def test_a_good_model_validates() -> None:
    validate(record(), FEATURES)
    validate(record(), FEATURES, "car-fleet")


def rejected(rec: ModelRecord, **kw: object) -> ModelRejected:
    kw.setdefault("features", FEATURES)
    with pytest.raises(ModelRejected) as info:
        validate(rec, **kw)  # type: ignore[arg-type]
    return info.value


def model_of(features: tuple[str, ...]) -> ModelRecord:
    """A valid model taking ``features`` (any names, any order)."""
    n = len(features)
    return build_record(
        "car-ae",
        1,
        make_test_onnx(n_features=n),
        threshold=1.0,
        features=features,
        normalization={"mean": [0.0] * n},
    )


def test_checksum_mismatch_is_refused() -> None:
    rec = record()
    assert rec.onnx is not None
    tampered = msgspec.structs.replace(rec, onnx=make_test_onnx(bias=9.0))
    error = rejected(tampered)
    assert error.reason == "checksum"
    assert "sha256" in error.detail


def test_inputs_are_named_so_order_and_a_subset_are_fine() -> None:
    # The scorer takes each input column by name (tests/unit/test_score.py checks the values).
    validate(model_of((FEATURES[1], FEATURES[0], *FEATURES[2:])), FEATURES)
    validate(model_of(FEATURES[:5]), FEATURES)  # e.g. trained before fields were added


def test_unexpected_repeated_and_no_features_are_refused() -> None:
    changed = (*FEATURES[:-1], "oil_pressure")
    error = rejected(model_of(changed))
    assert error.reason == "features"
    assert "['oil_pressure']" in error.detail and FEATURES[0] in error.detail
    repeated = rejected(model_of((FEATURES[0], FEATURES[1], FEATURES[0])))
    assert repeated.reason == "features" and FEATURES[0] in repeated.detail
    none = rejected(msgspec.structs.replace(record(), features=()))
    assert none.reason == "features" and "no input" in none.detail


def test_expected_features_come_from_the_caller() -> None:
    error = rejected(record(), features=FEATURES[:17])
    assert error.reason == "features" and FEATURES[17] in error.detail


def test_a_model_of_another_pipeline_is_refused() -> None:
    error = rejected(record(), pipeline="pumps")
    assert error.reason == "pipeline"
    assert "'car-fleet'" in error.detail and "'pumps'" in error.detail


def test_unknown_format_version_is_refused() -> None:
    error = rejected(msgspec.structs.replace(record(), format_version=FORMAT_VERSION + 1))
    assert error.reason == "format_version"


@pytest.mark.parametrize("threshold", [math.nan, math.inf])
def test_non_finite_threshold_is_refused(threshold: float) -> None:
    assert rejected(record(threshold=threshold)).reason == "threshold"


def test_normalization_of_the_wrong_length_is_refused() -> None:
    error = rejected(record(normalization={"mean": [0.0] * 17}))
    assert error.reason == "normalization"


def test_garbage_onnx_is_refused() -> None:
    bad = build_record("m", 1, b"definitely not onnx", threshold=1.0, features=FEATURES)
    error = rejected(bad)
    assert error.reason == "onnx"
    assert "cannot load" in error.detail


def test_onnx_breaking_the_contract_is_refused() -> None:
    renamed = build_record("m", 1, make_test_onnx(input_name="x"), threshold=1.0, features=FEATURES)
    assert rejected(renamed).reason == "onnx"
    narrow = build_record("m", 1, make_test_onnx(n_features=17), threshold=1.0, features=FEATURES)
    error = rejected(narrow)
    assert error.reason == "onnx" and "18 features" in error.detail


def test_model_bytes_come_from_a_file_uri(tmp_path: Path) -> None:
    data = make_test_onnx(bias=3.0)
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    rec = build_record("m", 1, data, threshold=1.0, features=FEATURES, uri=path.as_uri())
    assert rec.onnx is None and rec.size == len(data)
    assert model_bytes(rec) == data
    validate(rec, FEATURES)
    path.write_bytes(make_test_onnx(bias=4.0))
    assert rejected(rec).reason == "checksum"
    path.unlink()
    assert rejected(rec).reason == "missing_bytes"


def test_missing_bytes_and_unsupported_uri_are_refused() -> None:
    rec = record()
    assert rejected(msgspec.structs.replace(rec, onnx=None)).reason == "missing_bytes"
    s3 = msgspec.structs.replace(rec, onnx=None, uri="s3://bucket/m.onnx")
    assert "file://" in rejected(s3).detail


# ---- CLI parsing --------------------------------------------------------------------------------


def test_parse_ref() -> None:
    assert parse_ref("m:12") == ("m", 12)
    assert parse_ref("m:latest") == ("m", "latest")
    assert parse_ref("m") == ("m", None)
    with pytest.raises(typer.BadParameter):
        parse_ref("m:newest")
