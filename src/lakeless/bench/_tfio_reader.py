"""tensorflow-io's ``KafkaGroupIODataset`` reading a ``sensor-clean`` topic, timed.

This file is a script for the tensorflow-io virtualenv that ``lakeless bench train`` builds
(TensorFlow 2.16, tensorflow-io 0.37.1: the newest pair that installs together), not a module of
the lakeless package: it imports only the standard library, numpy and TensorFlow, and is run
as ``<tfio-venv>/bin/python _tfio_reader.py`` with its arguments as one JSON object on stdin (not
on the command line, where other users could read a SASL password). It prints one JSON object on
stdout; TensorFlow's own logging goes to stderr.

The talk's method: a consumer group (``KafkaGroupIODataset``) reads the topic from the earliest
offset and every message is decoded inside ``tf.data``. The talk's demo decoded CSV strings one
message at a time; here every message is a ``sensor-clean`` binary record, decoded in one of two
ways: per message as the talk did (``per_message``: ``tf.strings.substr`` cuts out the 18
float64 features, ``tf.io.decode_raw`` reinterprets them, one cast to float32, a parallel map
over single messages, then batching), or the most favourable way tensorflow-io allows (messages
batched first, then a whole batch decoded at once in TensorFlow's C++ kernels by the same ops).
Both with parallel map calls and prefetching; the librdkafka fetch settings are the lakeless
reader's.

Timing starts when the dataset is created (consumer-group join included, as for the lakeless
reader whose window resolution is timed) and stops when the expected number of events has
arrived (``take``), so the ``stream_timeout`` idle tail that ends a ``KafkaGroupIODataset`` is
never counted. The output names the seconds until the first batch too, so the join can be told
apart.

Arguments: ``servers``, ``topic``, ``group_id``, ``expected`` (events to
wait for), and optionally ``per_message`` (decode every message on its own, as the talk's demo
did, then batch; default: batch first, decode the batch), ``batch`` (messages per batch,
default 8192), ``configuration``
(extra ``key=value`` librdkafka settings), ``message_poll_timeout`` (ms, default 1000),
``stream_timeout`` (ms, default 10000).

Output: ``{"events", "seconds", "events_per_s", "first_batch_s", "complete", "decoding",
"tensorflow", "tensorflow_io"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

#: Offset of the 18 float64 features in a car-fleet clean record (layout 2: version byte,
#: fingerprint, ts, seq); the driver sends it as ``features_at`` (and ``features_bytes``).
FEATURES_AT = 1 + 8 + 8 + 8
#: Bytes of the 18 float64 features.
FEATURES_BYTES = 18 * 8


def measure(args: dict[str, Any]) -> dict[str, Any]:
    """Read ``args["expected"]`` events with ``KafkaGroupIODataset``; return the timing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorflow_io as tfio  # type: ignore[import-not-found, unused-ignore]

    expected = int(args["expected"])
    batch = int(args.get("batch", 8192))
    configuration = ["auto.offset.reset=earliest", *args.get("configuration", [])]
    features_at = int(args.get("features_at", FEATURES_AT))
    features_bytes = int(args.get("features_bytes", FEATURES_BYTES))

    per_message = bool(args.get("per_message", False))

    def decode(message: Any, _key: Any) -> Any:
        block = tf.strings.substr(message, features_at, features_bytes)
        return tf.cast(tf.io.decode_raw(block, tf.float64), tf.float32)

    started = time.perf_counter()
    dataset = tfio.experimental.streaming.KafkaGroupIODataset(
        topics=[args["topic"]],
        group_id=args["group_id"],
        servers=args["servers"],
        stream_timeout=int(args.get("stream_timeout", 10_000)),
        message_poll_timeout=int(args.get("message_poll_timeout", 1000)),
        configuration=configuration,
    )
    # take(): the dataset ends with the last expected message; without it the last, partial
    # batch would wait for new messages until stream_timeout.
    dataset = dataset.take(expected)
    if per_message:  # the talk's way: every message decoded on its own, then batched
        dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch)
        decoding = f"per message: substr + decode_raw(float64) -> float32, then batch({batch})"
    else:
        dataset = dataset.batch(batch).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        decoding = f"batch({batch}) -> substr + decode_raw(float64) -> float32, parallel map"
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    events = 0
    first_batch: float | None = None
    for features in dataset:
        if first_batch is None:
            first_batch = time.perf_counter() - started
        if features.shape[1] != 18:
            raise SystemExit(f"decoded {features.shape}, expected (n, 18)")
        events += int(features.shape[0])
        if events >= expected:
            break
    seconds = time.perf_counter() - started
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds if seconds > 0 else 0.0,
        "first_batch_s": first_batch,
        "complete": events >= expected,
        "decoding": decoding,
        "tensorflow": tf.__version__,
        "tensorflow_io": tfio.__version__,
    }


def main() -> int:
    """Run `measure` with the JSON object on stdin; print its result as JSON on stdout."""
    result = measure(json.loads(sys.stdin.read()))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
