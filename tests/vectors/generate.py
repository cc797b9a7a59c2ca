"""Reference generator of the shared test vectors of docs/data-contract.md.

Independent of lakeless on purpose (it must not import it): plain json and struct for the clean
layout, msgspec for msgpack, fastavro for the schema fingerprint, onnx to build a tiny model that
honours the scoring contract and onnxruntime to compute the scores every scorer must reproduce.
Python's and the JVM's tests both read the files this writes; a unit test checks that running it
again gives the committed files byte for byte.

Run from the repository root: ``.venv/bin/python tests/vectors/generate.py [OUT_DIR]``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import random
import struct
import sys
from pathlib import Path
from typing import Any

import fastavro.schema
import msgspec
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
CREATED_AT = 1764633600000  # 2025-12-02T00:00:00Z: every timestamp below is fixed
LAYOUT_VERSION = 2
NULL_LENGTH = 0xFFFF

# --- schemas -------------------------------------------------------------------------------


# The built-in pipeline's schema: a verbatim copy of src/lakeless/examples/car-fleet.avsc kept
# here as an input (not written by this script), so the vectors pin the fingerprint every
# car-fleet record carries; a test checks that the two files are the same schema.
CAR_FLEET: dict[str, Any] = json.loads((HERE / "car-fleet.avsc").read_text())

# Another shape: no sequence, int / float / boolean features, two context fields (one an enum,
# listed in the lakeless attribute in another order than in the schema), an enum label.
TURBINES_V1: dict[str, Any] = {
    "type": "record",
    "name": "TurbineReading",
    "namespace": "example.turbines",
    "lakeless": {
        "key": "turbine_id",
        "time": "at",
        "sequence": None,
        "label": "condition",
        "context": ["vendor", "farm"],
    },
    "fields": [
        {"name": "turbine_id", "type": "string"},
        {"name": "at", "type": "long"},
        {"name": "farm", "type": "string", "maxLength": 32},
        {"name": "rotor_rpm", "type": "float", "unit": "rpm", "min": 0, "max": 30},
        {
            "name": "vendor",
            "type": {"type": "enum", "name": "Vendor", "symbols": ["ACME", "NORDWIND", "SOLARIS"]},
        },
        {"name": "power_kw", "type": "double", "unit": "kW", "min": -50, "max": 5000},
        {"name": "yaw_errors", "type": "int", "unit": "count", "min": 0, "max": 1000, "default": 0},
        {"name": "blade_pitch", "type": "float", "unit": "deg", "min": -5, "max": 95},
        {"name": "brake_engaged", "type": "boolean", "default": False},
        {
            "name": "condition",
            "type": [
                "null",
                {"type": "enum", "name": "Condition", "symbols": ["ok", "icing", "bearing_wear"]},
            ],
            "default": None,
        },
    ],
}

# Version 2 adds a feature with a default (compatible evolution): records written with version 1
# decode with version 1's layout and take the default for it.
TURBINES_V2 = copy.deepcopy(TURBINES_V1)
TURBINES_V2["fields"].insert(
    9,
    {
        "name": "gearbox_temp",
        "type": "double",
        "unit": "degC",
        "min": -40,
        "max": 150,
        "default": 20.0,
    },
)

CAR_TOPICS = {
    "raw": "sensor-raw",
    "clean": "sensor-clean",
    "dlq": "sensor-dlq",
    "anomalies": "anomalies",
    "scores": "scores",
}


def pipeline_topics(name: str) -> dict[str, str]:
    return {t: f"{name}.{t}" for t in ("raw", "clean", "dlq", "anomalies", "scores")}


# --- derived from a schema -------------------------------------------------------------------


def _base_type(avro_type: Any) -> Any:
    """The non-null branch of ``["null", T]``, the type name of a complex type."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        assert len(branches) == 1, avro_type
        avro_type = branches[0]
    if isinstance(avro_type, dict):
        return avro_type["type"]
    return avro_type


NUMERIC = {"int", "long", "float", "double", "boolean"}


def roles(schema: dict[str, Any]) -> dict[str, Any]:
    attr = schema["lakeless"]
    return {
        "key": attr["key"],
        "time": attr["time"],
        "sequence": attr.get("sequence"),
        "label": attr.get("label"),
        "context": list(attr.get("context") or []),
    }


def features(schema: dict[str, Any]) -> list[str]:
    r = roles(schema)
    skip = {r["key"], r["time"], r["sequence"]}
    return [
        f["name"]
        for f in schema["fields"]
        if f["name"] not in skip and _base_type(f["type"]) in NUMERIC
    ]


def string_fields(schema: dict[str, Any]) -> list[str]:
    """The strings of the clean layout: key, context fields in schema order, label."""
    r = roles(schema)
    contexts = [f["name"] for f in schema["fields"] if f["name"] in r["context"]]
    return [r["key"], *contexts, *([r["label"]] if r["label"] else [])]


def canonical_form(schema: dict[str, Any]) -> str:
    return str(fastavro.schema.to_parsing_canonical_form(schema))


def fingerprint(schema: dict[str, Any]) -> int:
    """The CRC-64-AVRO value (fastavro's string is its little-endian bytes, in hex)."""
    return int.from_bytes(
        bytes.fromhex(fastavro.schema.fingerprint(canonical_form(schema), "CRC-64-AVRO")),
        "little",
    )


def fingerprint_hex(schema: dict[str, Any]) -> str:
    """As the contract writes it: the 8 little-endian bytes in hex (what fastavro prints)."""
    return str(fastavro.schema.fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def encode_clean(schema: dict[str, Any], event: dict[str, Any]) -> bytes:
    """Clean layout v2 of a (valid) device event; absent fields take their defaults."""
    r = roles(schema)
    defaults = {f["name"]: f["default"] for f in schema["fields"] if "default" in f}
    full = {**defaults, **event}
    out = bytearray([LAYOUT_VERSION])
    out += struct.pack("<Q", fingerprint(schema))
    out += struct.pack("<q", full[r["time"]])
    if r["sequence"]:
        out += struct.pack("<q", full[r["sequence"]])
    for name in features(schema):
        out += struct.pack("<d", float(full[name]))
    for name in string_fields(schema):
        value = full[name]
        if value is None:
            out += struct.pack("<H", NULL_LENGTH)
        else:
            data = value.encode()
            out += struct.pack("<H", len(data)) + data
    return bytes(out)


def decoded(schema: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """What a reader gets back from the clean record of ``event`` (reader = writer schema)."""
    r = roles(schema)
    defaults = {f["name"]: f["default"] for f in schema["fields"] if "default" in f}
    full = {**defaults, **event}
    return {
        "time": full[r["time"]],
        "sequence": full[r["sequence"]] if r["sequence"] else None,
        "features": {name: float(full[name]) for name in features(schema)},
        "strings": {name: full[name] for name in string_fields(schema)},
    }


# --- events ----------------------------------------------------------------------------------

HEALTHY_CAR = {
    "coolant_temp": 88.5,
    "intake_air_temp": 24.25,
    "intake_air_flow_speed": 61.0,
    "battery_percentage": 77.5,
    "battery_voltage": 398.2,
    "current_draw": 42.0,
    "speed": 22.5,
    "engine_vibration_amplitude": 1450.0,
    "throttle_pos": 0.31,
    "tire_pressure_1_1": 35.5,
    "tire_pressure_1_2": 35.25,
    "tire_pressure_2_1": 34.75,
    "tire_pressure_2_2": 35.0,
    "accelerometer_1_1_value": 0.12,
    "accelerometer_1_2_value": -0.08,
    "accelerometer_2_1_value": 0.15,
    "accelerometer_2_2_value": -0.11,
    "control_unit_firmware": 2000.0,
}
CAR_SCALE = {  # a typical spread per feature, for the test model and the random fleet
    "coolant_temp": 6.0,
    "intake_air_temp": 5.0,
    "intake_air_flow_speed": 20.0,
    "battery_percentage": 15.0,
    "battery_voltage": 8.0,
    "current_draw": 40.0,
    "speed": 8.0,
    "engine_vibration_amplitude": 300.0,
    "throttle_pos": 0.15,
    "tire_pressure_1_1": 0.8,
    "tire_pressure_1_2": 0.8,
    "tire_pressure_2_1": 0.8,
    "tire_pressure_2_2": 0.8,
    "accelerometer_1_1_value": 0.1,
    "accelerometer_1_2_value": 0.1,
    "accelerometer_2_1_value": 0.1,
    "accelerometer_2_2_value": 0.1,
    "control_unit_firmware": 1.0,
}


def car_event(car_id: str, ts: int, seq: int, model: str, **values: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"car_id": car_id, "ts": ts, "seq": seq, "model": model}
    event.update(HEALTHY_CAR)
    failure = values.pop("failure", None)
    event.update(values)
    if failure is not None:
        event["failure"] = failure
    return event


CAR_EVENTS = [
    car_event("car-0001", CREATED_AT, 0, "e-sedan"),
    car_event("car-0001", CREATED_AT + 1000, 1, "e-sedan", failure=None, speed=0.0),
    car_event(
        "car-0042",
        CREATED_AT + 2500,
        917,
        "e-suv",
        coolant_temp=141.75,
        current_draw=-310.5,
        accelerometer_2_2_value=-0.0,
        failure="overheating",
    ),
    # Multi-byte UTF-8 in a string field: lengths count bytes, not characters (the key must
    # match its pattern, so the context field carries them).
    car_event("car:7.b_x-1", 0, 2**40, "Zo\u00eb \u2603 \u00e9t\u00e9", battery_percentage=100.0),
    car_event("c", 2**62, 3, "M", tire_pressure_2_2=12.5, failure="flat_tire"),
]
CAR_EVENTS[1]["failure"] = None  # an explicit null, where event 0 leaves the label out

TURBINE_EVENTS = [
    {
        "turbine_id": "T-01",
        "at": CREATED_AT,
        "farm": "north-sea-3",
        "rotor_rpm": 14.5,
        "vendor": "NORDWIND",
        "power_kw": 2310.25,
        "yaw_errors": 3,
        "blade_pitch": 2.25,
        "brake_engaged": False,
        "condition": "ok",
    },
    # Defaults: yaw_errors and brake_engaged absent, condition absent (null).
    {
        "turbine_id": "T-02",
        "at": CREATED_AT + 60000,
        "farm": "north-sea-3",
        "rotor_rpm": 0.0,
        "vendor": "ACME",
        "power_kw": -12.5,
        "blade_pitch": 88.0,
    },
    {
        "turbine_id": "T-17",
        "at": CREATED_AT + 120000,
        "farm": "alpine \u00fcber",
        "rotor_rpm": 21.125,
        "vendor": "SOLARIS",
        "power_kw": 4999.5,
        "yaw_errors": 1000,
        "blade_pitch": -5.0,
        "brake_engaged": True,
        "condition": "bearing_wear",
    },
]

# --- the tiny model ----------------------------------------------------------------------------

OPSET, IR_VERSION = 17, 8


def make_onnx(
    n_features: int,
    mean: list[float],
    scale: list[float],
    bias: float,
    *,
    input_name: str = "features",
    outputs: tuple[str, ...] = ("score", "feature_errors"),
) -> bytes:
    """feature_errors = ((x - mean) * scale)^2 / n; score = sum(feature_errors) + bias."""
    init = [
        numpy_helper.from_array(np.asarray(mean, np.float32), "mean"),
        numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array([n_features], np.float32), "n"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.array([bias], np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Sub", [input_name, "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "scaled"], ["squared"]),
        helper.make_node("Div", ["squared", "n"], ["feature_errors"]),
        helper.make_node("ReduceSum", ["feature_errors", "axes"], ["total"], keepdims=0),
        helper.make_node("Add", ["total", "bias"], ["score"]),
    ]
    shapes = {"score": ["N"], "feature_errors": ["N", n_features]}
    graph = helper.make_graph(
        nodes,
        "lakeless-vector-model",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs],
        initializer=init,
    )
    model = helper.make_model(
        graph,
        producer_name="lakeless-vectors",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def run_onnx(data: bytes, rows: list[list[float]]) -> tuple[list[float], list[list[float]]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    batch = {"features": np.array(rows, np.float32)}
    score, errors = session.run(["score", "feature_errors"], batch)
    return [float(s) for s in score], [[float(e) for e in row] for row in errors]


# --- registry records ----------------------------------------------------------------------------

CAR_FEATURES = features(CAR_FLEET)
CAR_MEAN = [HEALTHY_CAR[f] for f in CAR_FEATURES]
CAR_INV_SCALE = [1.0 / CAR_SCALE[f] for f in CAR_FEATURES]
MODEL_NAME = "car-autoencoder"


def model_record(version: int, onnx_bytes: bytes | None, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "model",
        "format_version": 2,
        "name": MODEL_NAME,
        "version": version,
        "stage": "candidate",
        "created_at": CREATED_AT + version,
        "sha256": hashlib.sha256(onnx_bytes or b"").hexdigest(),
        "size": len(onnx_bytes or b""),
        "uri": None,
        "onnx": onnx_bytes,
        "pipeline": "car-fleet",
        "schema_fingerprint": fingerprint_hex(CAR_FLEET),
        "features": list(CAR_FEATURES),
        "normalization": {
            "mean": [float(m) for m in CAR_MEAN],
            "variance": [CAR_SCALE[f] ** 2 for f in CAR_FEATURES],
        },
        "threshold": 1.0,
        "metrics": {"auc": 0.97, "threshold_quantile": 0.995},
        "lineage": {
            "topic": "sensor-clean",
            "partitions": {"0": [0, 1000]},
            "time": [CREATED_AT - 3600000, CREATED_AT],
        },
        "frameworks": {"onnx": "vectors", "python": "vectors"},
        "params": {"epochs": 1},
        "report": None,
        "description": f"test vector model v{version}",
    }
    record.update(changes)
    return record


def format_1_record(version: int, onnx_bytes: bytes) -> dict[str, Any]:
    """A record as format 1 wrote it: schema_version instead of pipeline/schema_fingerprint."""
    record = model_record(version, onnx_bytes, format_version=1, schema_version=1)
    del record["pipeline"], record["schema_fingerprint"]
    return record


def stage_record(version: int, stage: str, at: int) -> dict[str, Any]:
    return {
        "kind": "stage",
        "format_version": 2,
        "name": MODEL_NAME,
        "version": version,
        "stage": stage,
        "at": at,
    }


def headers(record: dict[str, Any]) -> list[list[str]]:
    return [
        ["lakeless.kind", record["kind"]],
        ["lakeless.name", record["name"]],
        ["lakeless.version", str(record["version"])],
    ]


def packed(record: dict[str, Any]) -> str:
    return base64.b64encode(msgspec.msgpack.encode(record)).decode()


def registry_vectors() -> tuple[dict[str, Any], dict[str, bytes]]:
    n = len(CAR_FEATURES)
    good = {
        1: make_onnx(n, CAR_MEAN, CAR_INV_SCALE, 0.0),
        2: make_onnx(n, CAR_MEAN, CAR_INV_SCALE, 0.25),
    }
    wrong_input = make_onnx(n, CAR_MEAN, CAR_INV_SCALE, 0.0, input_name="x")
    narrow = make_onnx(n - 1, CAR_MEAN[:-1], CAR_INV_SCALE[:-1], 0.0)
    no_errors = make_onnx(n, CAR_MEAN, CAR_INV_SCALE, 0.0, outputs=("score",))
    garbage = b"this is not an ONNX model"

    def norm(count: int) -> dict[str, list[float]]:
        # Lengths that match the record's own features: a features case breaks that rule only.
        return {"mean": [0.0] * count, "variance": [1.0] * count}

    swapped = list(CAR_FEATURES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("accept-v1", model_record(1, good[1], stage="live"), "accept", "a valid live model"),
        ("accept-v2", model_record(2, good[2]), "accept", "a valid candidate (bias 0.25)"),
        (
            "accept-no-normalization",
            model_record(3, good[1], normalization=None, report={"note": "x"}),
            "accept",
            "normalization is optional (null)",
        ),
        (
            "accept-unknown-field",
            model_record(4, good[1], future_field={"a": 1}),
            "accept",
            "unknown fields are ignored",
        ),
        (
            "accept-format-version-1",
            format_1_record(5, good[1]),
            "accept",
            "format 1 (before pipelines were declared: no pipeline, schema_version): car-fleet",
        ),
        (
            "format-version-3",
            model_record(6, good[1], format_version=3),
            "format_version",
            "a newer layout",
        ),
        (
            "threshold-nan",
            model_record(7, good[1], threshold=math.nan),
            "threshold",
            "not finite",
        ),
        (
            "threshold-inf",
            model_record(8, good[1], threshold=math.inf),
            "threshold",
            "not finite",
        ),
        (
            "accept-features-order",
            model_record(9, good[1], features=swapped),
            "accept",
            "the pipeline's features in another order: scorers feed the model's order by name",
        ),
        (
            "accept-features-subset",
            model_record(10, narrow, features=CAR_FEATURES[:-1], normalization=norm(n - 1)),
            "accept",
            "17 of the 18 features (a model trained before a field was added keeps scoring)",
        ),
        (
            "features-repeated",
            model_record(
                21, good[1], features=[*CAR_FEATURES[:-1], CAR_FEATURES[0]], normalization=norm(n)
            ),
            "features",
            "a feature named twice",
        ),
        (
            "features-empty",
            model_record(22, good[1], features=[], normalization=None),
            "features",
            "no input features",
        ),
        (
            "pipeline-other",
            model_record(23, good[1], pipeline="turbines"),
            "pipeline",
            "trained on another pipeline than the scorer reads",
        ),
        (
            "features-extra",
            model_record(
                11, good[1], features=[*CAR_FEATURES, "odometer"], normalization=norm(n + 1)
            ),
            "features",
            "a feature the pipeline lacks",
        ),
        (
            "normalization-length",
            model_record(
                12,
                good[1],
                normalization={"mean": CAR_MEAN[:-1], "variance": [1.0] * n},
            ),
            "normalization",
            "17 means for 18 features",
        ),
        (
            "checksum-sha256",
            model_record(13, good[1], sha256="0" * 64),
            "checksum",
            "bytes do not hash to sha256",
        ),
        (
            "checksum-size",
            model_record(14, good[1], size=len(good[1]) + 1),
            "checksum",
            "right sha256, wrong size",
        ),
        (
            "missing-bytes-none",
            model_record(15, None, sha256="0" * 64, size=0, onnx=None, uri=None),
            "missing_bytes",
            "neither onnx nor uri",
        ),
        (
            "missing-bytes-uri",
            model_record(
                16,
                None,
                sha256=hashlib.sha256(good[1]).hexdigest(),
                size=len(good[1]),
                onnx=None,
                uri="file:///nonexistent/lakeless-vectors/model.onnx",
            ),
            "missing_bytes",
            "a file:// uri that cannot be read",
        ),
        (
            "onnx-garbage",
            model_record(17, garbage),
            "onnx",
            "bytes that match the checksum but are no ONNX model",
        ),
        (
            "onnx-input-name",
            model_record(18, wrong_input),
            "onnx",
            "input named x instead of features",
        ),
        ("onnx-width", model_record(19, narrow), "onnx", "the graph takes 17 features"),
        (
            "onnx-no-feature-errors",
            model_record(20, no_errors),
            "onnx",
            "output feature_errors missing",
        ),
    ]
    records = [
        {
            "id": case_id,
            "description": text,
            "pipeline": "car-fleet",
            "pipeline_features": list(CAR_FEATURES),
            "verdict": verdict,
            "key": record["name"],
            "headers": headers(record),
            "value_b64": packed(record),
        }
        for case_id, record, verdict, text in cases
    ]
    stages = {
        "promote-v2": stage_record(2, "live", CREATED_AT + 100),
        "archive-v2": stage_record(2, "archived", CREATED_AT + 200),
        "promote-v1": stage_record(1, "live", CREATED_AT + 300),
        "promote-unknown-v99": stage_record(99, "live", CREATED_AT + 400),
        "promote-threshold-nan-v7": stage_record(7, "live", CREATED_AT + 500),
    }
    duplicate_v2 = model_record(2, good[1], stage="live", description="a duplicate of v2")
    entries = {
        **{c["id"]: c["value_b64"] for c in records},
        **{k: packed(v) for k, v in stages.items()},
        "duplicate-v2-live": packed(duplicate_v2),
    }
    folds = [
        {
            "description": "registered live, then a candidate promoted: the old live is archived",
            "log": ["accept-v1", "accept-v2", "promote-v2"],
            "live_after_each": [1, 1, 2],
            "stages": {"1": "archived", "2": "live"},
        },
        {
            "description": "a duplicate (name, version) is ignored: the lowest offset wins",
            "log": ["accept-v1", "accept-v2", "duplicate-v2-live"],
            "live_after_each": [1, 1, 1],
            "stages": {"1": "live", "2": "candidate"},
        },
        {
            "description": "a stage change of a version not registered (yet) is ignored",
            "log": ["promote-unknown-v99", "accept-v1"],
            "live_after_each": [None, 1],
            "stages": {"1": "live"},
        },
        {
            "description": "moving the live version to another stage leaves no live version",
            "log": ["accept-v2", "promote-v2", "archive-v2", "accept-v1"],
            "live_after_each": [None, 2, None, 1],
            "stages": {"1": "live", "2": "archived"},
        },
        {
            "description": "promoting an older version back",
            "log": ["accept-v1", "accept-v2", "promote-v2", "promote-v1"],
            "live_after_each": [1, 1, 2, 1],
            "stages": {"1": "live", "2": "archived"},
        },
        {
            "description": "the fold ignores validity: a refused record can be live in the log",
            "log": ["accept-v1", "threshold-nan", "promote-threshold-nan-v7"],
            "live_after_each": [1, 1, 7],
            "stages": {"1": "archived", "7": "live"},
        },
    ]
    doc = {
        "contract": "docs/data-contract.md section 5",
        "topic": "lakeless.models",
        "rules": (
            "value_b64 is the msgpack record value; verdict is 'accept' or the reason code a "
            "follower must refuse it with (format_version, threshold, pipeline, features, "
            "normalization, checksum, missing_bytes, onnx), checking the record against the "
            "scorer's pipeline (a record without one is car-fleet's) and its current "
            "pipeline_features: every model input must be one of them, once, in any order "
            "(scorers feed the model's own order by name); each refused case breaks exactly one"
            " rule. folds: the log (entry ids in offset order) and the live version of car-"
            "autoencoder after each record, and the final stage of each version."
        ),
        "model": MODEL_NAME,
        "records": records,
        "entries": entries,
        "folds": folds,
    }
    return doc, good


# --- the stream: events whose scores every scorer must reproduce -------------------------------


def clamp(name: str, value: float) -> float:
    """``value`` within the field's physical range: every vector event is a valid one."""
    field = next(f for f in CAR_FLEET["fields"] if f["name"] == name)
    return float(min(max(value, field["min"]), field["max"]))


def stream_vectors(models: dict[int, bytes]) -> dict[str, Any]:
    rng = random.Random(15)
    cars = [f"car-{i:04d}" for i in range(8)]
    models_by_car = {car: ("e-sedan", "e-suv", "e-van")[i % 3] for i, car in enumerate(cars)}
    failing = {"car-0003": "overheating", "car-0006": "battery_drain"}
    events = []
    for i in range(240):
        car = cars[i % len(cars)]
        seq = i // len(cars)
        values = {
            f: clamp(f, round(HEALTHY_CAR[f] + rng.gauss(0.0, 0.5) * CAR_SCALE[f], 4))
            for f in CAR_FEATURES
        }
        values["control_unit_firmware"] = 2000.0
        failure = failing.get(car) if seq >= 15 else None
        if failure == "overheating":
            values["coolant_temp"] = round(110.0 + seq * 0.75, 4)
        elif failure == "battery_drain":
            values["battery_voltage"] = round(380.0 - seq * 0.5, 4)
            values["current_draw"] = round(160.0 + seq, 4)
        event = car_event(car, CREATED_AT + i * 250, seq, models_by_car[car], **values)
        if failure:
            event["failure"] = failure
        events.append(event)
    rows = [[float(e[f]) for f in CAR_FEATURES] for e in events]
    scored = {str(v): run_onnx(data, rows) for v, data in models.items()}
    return {
        "contract": "docs/data-contract.md sections 3 and 5",
        "pipeline": "car-fleet",
        "rules": (
            "events in order; each with its Kafka key, record timestamp and clean-layout value "
            "(hex). scores[version] are ONNX Runtime's float32 outputs of model version "
            "(registry.json accept-v1 / accept-v2) on the event's features, as float64 (and "
            "feature_errors of the first 16 events); a scorer must match them within 1e-5. "
            "threshold 1.0 (both models): score > threshold is an anomaly."
        ),
        "threshold": 1.0,
        "events": [
            {
                "key": e["car_id"],
                "timestamp": e["ts"],
                "json": json.dumps(e, ensure_ascii=False),
                "clean_hex": encode_clean(CAR_FLEET, e).hex(),
            }
            for e in events
        ],
        "scores": {v: s for v, (s, _) in scored.items()},
        "feature_errors_first_16": {v: errs[:16] for v, (_, errs) in scored.items()},
    }


# --- files ----------------------------------------------------------------------------------------


def schema_vectors() -> dict[str, Any]:
    pipelines = [
        ("car-fleet", 1, CAR_FLEET, CAR_TOPICS, "car-autoencoder"),
        ("turbines", 1, TURBINES_V1, pipeline_topics("turbines"), "turbines-autoencoder"),
        ("turbines", 2, TURBINES_V2, pipeline_topics("turbines"), "turbines-autoencoder"),
    ]
    out = []
    for name, version, schema, topics, model in pipelines:
        value = {
            "kind": "pipeline",
            "format_version": 1,
            "pipeline": name,
            "version": version,
            "fingerprint": fingerprint_hex(schema),
            "created_at": CREATED_AT + version,
            "topics": topics,
            "model": model,
            "partitions": 6,
            "schema": schema,
        }
        out.append(
            {
                "pipeline": name,
                "version": version,
                "canonical_form": canonical_form(schema),
                "fingerprint": fingerprint_hex(schema),
                "fingerprint_value": f"{fingerprint(schema):016x}",
                "header_hex": struct.pack("<BQ", LAYOUT_VERSION, fingerprint(schema)).hex(),
                "roles": roles(schema),
                "features": features(schema),
                "strings": string_fields(schema),
                "numeric_size": 17
                + 8 * bool(roles(schema)["sequence"])
                + 8 * len(features(schema)),
                "registry_record": {"key": name, "value": value},
            }
        )
    return {
        "contract": "docs/data-contract.md sections 1 and 2",
        "topic": "lakeless.schemas",
        "rules": (
            "fingerprint: CRC-64-AVRO of the Parsing Canonical Form, its 8 little-endian bytes "
            "in hex (what fastavro.schema.fingerprint returns; also header_hex[2:]); "
            "fingerprint_value: the same 64-bit value as a number in hex (Java: "
            'String.format("%016x", SchemaNormalization.parsingFingerprint64(schema))). '
            "numeric_size: bytes before the first string (version byte, "
            "fingerprint, time, sequence, features). registry_record: the key and JSON value "
            "of the version's record on lakeless.schemas."
        ),
        "schemas": out,
    }


def clean_vectors() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for schema, events, pipeline, version in (
        (CAR_FLEET, CAR_EVENTS, "car-fleet", 1),
        (TURBINES_V1, TURBINE_EVENTS, "turbines", 1),
        (TURBINES_V2, [{**TURBINE_EVENTS[0], "gearbox_temp": 61.5}], "turbines", 2),
    ):
        for event in events:
            key = event[roles(schema)["key"]]
            cases.append(
                {
                    "pipeline": pipeline,
                    "writer_version": version,
                    "reader_version": version,
                    "key": key,
                    "json": json.dumps(event, ensure_ascii=False),
                    "clean_hex": encode_clean(schema, event).hex(),
                    "decoded": decoded(schema, event),
                }
            )
    # Written with version 1, read with version 2: version 1's layout, gearbox_temp's default.
    old = decoded(TURBINES_V1, TURBINE_EVENTS[0])
    features_v2 = {name: old["features"].get(name, 20.0) for name in features(TURBINES_V2)}
    cases.append(
        {
            "pipeline": "turbines",
            "writer_version": 1,
            "reader_version": 2,
            "key": TURBINE_EVENTS[0]["turbine_id"],
            "json": json.dumps(TURBINE_EVENTS[0]),
            "clean_hex": encode_clean(TURBINES_V1, TURBINE_EVENTS[0]).hex(),
            "decoded": {**old, "features": features_v2},
        }
    )
    good = encode_clean(CAR_FLEET, CAR_EVENTS[0])
    unknown = bytes([2]) + struct.pack("<Q", fingerprint(TURBINES_V1)) + good[9:]
    errors = [
        {
            "pipeline": "car-fleet",
            "reason": "fingerprint",
            "description": "a turbines record on the car-fleet topic: not a registered version",
            "clean_hex": unknown.hex(),
        },
        {
            "pipeline": "car-fleet",
            "reason": "layout_version",
            "description": "layout version 1 (the old fixed car layout)",
            "clean_hex": (bytes([1]) + good[1:]).hex(),
        },
        {
            "pipeline": "car-fleet",
            "reason": "truncated",
            "description": "cut inside the numeric block",
            "clean_hex": good[:100].hex(),
        },
        {
            "pipeline": "car-fleet",
            "reason": "truncated",
            "description": "a string longer than what is left",
            "clean_hex": good[:-3].hex(),
        },
        {
            "pipeline": "car-fleet",
            "reason": "trailing",
            "description": "bytes after the last string",
            "clean_hex": (good + b"\x00").hex(),
        },
    ]
    return {
        "contract": "docs/data-contract.md section 3",
        "rules": (
            "clean_hex is the exact NAME.clean value of json (written with writer_version of "
            "schemas.json); decoded is what a reader using reader_version gets: time, sequence "
            "(null without a sequence field), features as float64 by name, strings (key, "
            "context fields in schema order, label) with null for 0xFFFF. errors: values a "
            "reader must refuse, with a reason (fingerprint, layout_version, truncated, "
            "trailing). Float-typed features use values exact in float32, so rounding through "
            "float32 or not gives the same bytes."
        ),
        "cases": cases,
        "errors": errors,
    }


def output_vectors() -> dict[str, Any]:
    anomaly = {
        "car_id": "car-0042",
        "ts": CREATED_AT + 2500,
        "seq": 917,
        "score": 3.140625,
        "threshold": 1.0,
        "model": MODEL_NAME,
        "model_version": 2,
        "top_features": [
            {"name": "coolant_temp", "value": 141.75, "error": 2.5},
            {"name": "current_draw", "value": -310.5, "error": 0.5},
            {"name": "speed", "value": 22.5, "error": 0.0},
        ],
        "failure": "overheating",
        "source": "sensor-clean[3]@1234",
    }
    score = {
        "car_id": "car-0042",
        "ts": CREATED_AT + 2500,
        "seq": 917,
        "score": 3.140625,
        "threshold": 1.0,
        "anomaly": True,
        "model": MODEL_NAME,
        "model_version": 2,
    }
    turbine_anomaly = {
        "turbine_id": "T-17",
        "at": CREATED_AT + 120000,
        "score": 12.5,
        "threshold": 4.0,
        "model": "turbines-autoencoder",
        "model_version": 1,
        "top_features": [{"name": "yaw_errors", "value": 1000.0, "error": 11.0}],
        "condition": "bearing_wear",
        "source": "turbines.clean[0]@7",
    }
    turbine_score = {
        "turbine_id": "T-01",
        "at": CREATED_AT,
        "score": 0.25,
        "threshold": 4.0,
        "anomaly": False,
        "model": "turbines-autoencoder",
        "model_version": 1,
    }
    return {
        "contract": "docs/data-contract.md section 4",
        "rules": (
            "JSON objects, compared as parsed JSON (key order and number spelling are free); "
            "field names are the schema's own; a pipeline without a sequence has no sequence "
            "field, one without a label no label field. fields lists the keys in the order "
            "this generator writes them."
        ),
        "examples": [
            {"pipeline": p, "kind": k, "key": v[key], "fields": list(v), "value": v}
            for p, k, key, v in (
                ("car-fleet", "anomaly", "car_id", anomaly),
                ("car-fleet", "score", "car_id", score),
                ("turbines", "anomaly", "turbine_id", turbine_anomaly),
                ("turbines", "score", "turbine_id", turbine_score),
            )
        ],
    }


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    registry, models = registry_vectors()
    files = {
        "turbines-v1.avsc": TURBINES_V1,
        "turbines-v2.avsc": TURBINES_V2,
        "schemas.json": schema_vectors(),
        "clean.json": clean_vectors(),
        "outputs.json": output_vectors(),
        "registry.json": registry,
        "stream.json": stream_vectors(models),
    }
    written = []
    for name, doc in files.items():
        path = out / name
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
