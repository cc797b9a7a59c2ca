"""Quix Streams scoring a ``sensor-clean`` topic with the ONNX model, one record at a time, timed.

This file is a script for the Quix Streams virtualenv that ``lakeless bench score`` builds
(Quix Streams pins an older confluent-kafka and pydantic than lakeless, so it lives in a
virtualenv of its own), not a module of the lakeless package: it imports only the standard
library, numpy, ONNX Runtime and Quix Streams. It is run as ``<quix-venv>/bin/python
_quix_scorer.py`` with its arguments as one JSON object on stdin and prints one JSON object on
stdout.

The pipeline is the natural Quix Streams one: a ``StreamingDataFrame`` over the topic (raw
bytes), ``apply`` decodes the record's 18 float64 features at their fixed offset and calls
``InferenceSession.run`` on that one row, ``filter`` keeps the anomalies (score above the
threshold) and ``to_topic`` produces them as JSON. Timing starts at the first record and stops
when ``expected`` records went through the ``apply``.

Arguments: ``servers``, ``topic``, ``output``, ``group_id``, ``onnx_path``, ``threshold``,
``expected``, ``timeout`` (seconds).

Output: ``{"events", "seconds", "anomalies", "complete", "quixstreams"}``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

#: Offset and count of the float64 features in a car-fleet clean record (layout 2: version,
#: fingerprint, ts, seq); the driver sends them as ``features_at`` and ``n_features``.
_FEATURES_AT = 1 + 8 + 8 + 8
_N_FEATURES = 18


def main() -> None:
    """Read the arguments from stdin, run the pipeline, print the result."""
    import numpy as np
    import onnxruntime as ort
    import quixstreams  # type: ignore[import-not-found]
    from quixstreams import Application

    args: dict[str, Any] = json.loads(sys.stdin.read())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args["onnx_path"], options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    threshold = float(args["threshold"])
    expected = int(args["expected"])
    features_at = int(args.get("features_at", _FEATURES_AT))
    n_features = int(args.get("n_features", _N_FEATURES))
    app = Application(
        broker_address=args["servers"],
        consumer_group=args["group_id"],
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )
    source = app.topic(args["topic"], value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(args["output"], value_serializer="json", key_serializer="bytes")
    state = {"n": 0, "first": 0.0, "last": 0.0, "anomalies": 0}

    def score(value: bytes) -> dict[str, Any]:
        if state["n"] == 0:
            state["first"] = time.perf_counter()
        x = np.frombuffer(value, "<f8", n_features, features_at).astype(np.float32)
        outputs = session.run(None, {input_name: x[None]})
        result = {"score": float(outputs[0].reshape(-1)[0])}
        state["n"] += 1
        if state["n"] >= expected:
            state["last"] = time.perf_counter()
            app.stop()
        return result

    def anomaly(row: dict[str, Any]) -> bool:
        hit: bool = row["score"] > threshold
        state["anomalies"] += hit
        return hit

    sdf = app.dataframe(source)
    sdf = sdf.apply(score).filter(anomaly)
    sdf.to_topic(sink)
    app.run(timeout=float(args["timeout"]))
    last = state["last"] or time.perf_counter()
    print(
        json.dumps(
            {
                "events": state["n"],
                "seconds": last - state["first"] if state["n"] else 0.0,
                "anomalies": state["anomalies"],
                "complete": state["n"] >= expected,
                "quixstreams": quixstreams.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
