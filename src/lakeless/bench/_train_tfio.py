"""The train suite's tensorflow-io peer: its virtualenv and its read of the topic.

tensorflow-io 0.37.1 installs only beside TensorFlow 2.16, so it runs as a subprocess
(``lakeless.bench._tfio_reader``) in a virtualenv of its own, built on first use
(`ensure_tfio_venv`); `read_with_tfio` is the ``tensorflow-io`` path of
`lakeless.bench._train`.
"""

from __future__ import annotations

import logging
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Final

from confluent_kafka import TopicPartition

from lakeless.bench._harness import BenchError
from lakeless.bench._peer import cached_venv, ensure_venv, run_command, run_peer_script
from lakeless.bench._result import BenchResult
from lakeless.bench._train_report import TFIO, TFIO_PER_MESSAGE
from lakeless.config import KafkaSettings
from lakeless.dataset import READ_CONFIG
from lakeless.fleet._schema import FEATURES, SCHEMA
from lakeless.kafka import make_consumer
from lakeless.schema import CleanCodec

__all__ = [
    "TFIO_REQUIREMENTS",
    "TfioUnavailableError",
    "default_tfio_venv",
    "ensure_tfio_venv",
    "read_with_tfio",
]

logger = logging.getLogger(__name__)

#: What the tensorflow-io virtualenv holds: the newest tensorflow-io and the TensorFlow it needs.
TFIO_REQUIREMENTS: Final = ("tensorflow==2.16.2", "tensorflow-io==0.37.1")
#: Python versions TensorFlow 2.16 has wheels for.
_TFIO_PYTHONS: Final = ((3, 9), (3, 10), (3, 11), (3, 12))
_TFIO_MARKER: Final = ".lakeless-tfio-ready"
_TFIO_SCRIPT: Final = Path(__file__).with_name("_tfio_reader.py")
#: librdkafka fetch settings the tensorflow-io consumer gets too: the lakeless reader's.
_FETCH_KEYS: Final = (
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.wait.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
)


class TfioUnavailableError(BenchError):
    """The tensorflow-io virtualenv is missing and could not be built (no network, no Python)."""


# ---- the tensorflow-io virtualenv ---------------------------------------------------------------


def default_tfio_venv() -> Path:
    """``$LAKELESS_BENCH_TFIO_VENV``, else ``$XDG_CACHE_HOME/lakeless/bench-tfio-venv``."""
    return cached_venv("LAKELESS_BENCH_TFIO_VENV", "bench-tfio-venv")


def _base_python() -> str:
    """A Python that TensorFlow 2.16 supports: this one, or a ``python3.X`` on the PATH."""
    if sys.version_info[:2] in _TFIO_PYTHONS:
        return sys.executable
    for major, minor in reversed(_TFIO_PYTHONS):
        if found := shutil.which(f"python{major}.{minor}"):
            return found
    raise TfioUnavailableError(
        "tensorflow-io 0.37.1 needs Python 3.9-3.12 for its TensorFlow 2.16; none found"
    )


_run: Final = partial(run_command, error=TfioUnavailableError)


def ensure_tfio_venv(path: Path | None = None, *, timeout: float = 1800.0) -> Path:
    """The Python of the tensorflow-io virtualenv at ``path``; built there first if needed.

    Building runs ``python -m venv`` and ``pip install`` `TFIO_REQUIREMENTS` (a few minutes
    and about 2 GB; needs the package index). A marker file written last makes an interrupted
    build count as missing, and the next call starts it again from scratch.

    Raises:
        TfioUnavailableError: it is missing and could not be built; the message says why.
    """
    return ensure_venv(
        path or default_tfio_venv(),
        TFIO_REQUIREMENTS,
        marker=_TFIO_MARKER,
        base_python=_base_python,
        timeout=timeout,
        run=lambda command, seconds, what: _run(command, seconds, what),  # patchable in tests
        check_import="tensorflow_io",
    )


# ---- the path -------------------------------------------------------------------------------


def read_with_tfio(
    python: Path,
    kafka: KafkaSettings,
    topic: str,
    group: str,
    *,
    rows: int,
    timeout: float,
    per_message: bool = False,
) -> BenchResult:
    """`TFIO`: tensorflow-io's ``KafkaGroupIODataset`` reading ``rows`` records of ``topic``.

    ``python`` is the virtualenv's (`ensure_tfio_venv`); ``group`` a fresh consumer group,
    committed at the log start first (untimed); ``timeout`` the seconds the stream may wait
    for a record. With ``per_message`` (`TFIO_PER_MESSAGE`) every message is decoded on its
    own, as the talk's demo did; else batches are decoded whole.
    """
    name = TFIO_PER_MESSAGE if per_message else TFIO
    read = READ_CONFIG
    config = {k: v for k, v in kafka.librdkafka().items() if k != "bootstrap.servers"}
    config.update({key: read[key] for key in _FETCH_KEYS})
    args = {
        "servers": kafka.bootstrap_servers,
        "topic": topic,
        "group_id": group,
        "expected": rows,
        "configuration": [f"{k}={v}" for k, v in config.items()],
        "stream_timeout": int(timeout * 1000),
        # The features' place in a clean record (they are contiguous, in schema order).
        "features_at": CleanCodec(SCHEMA).offset(FEATURES[0]),
        "features_bytes": 8 * len(FEATURES),
        "per_message": per_message,
    }
    logger.info("%s: %d rows in %s", name, rows, python)
    _commit_log_start(kafka, topic, group)
    return run_peer_script(
        name,
        python,
        _TFIO_SCRIPT,
        args,
        timeout=3 * timeout + 60,
        keep=("first_batch_s", "decoding", "tensorflow", "tensorflow_io"),
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        note="KafkaGroupIODataset, fresh group from the log start, "
        + ("decoded per message (the talk's way)" if per_message else "batched decode"),
        offsets="committed at the log start first (its ListOffsets v0 is gone in Kafka 4)",
    )


def _commit_log_start(kafka: KafkaSettings, topic: str, group: str) -> None:
    """Commit the log-start offsets for tensorflow-io's fresh group, untimed.

    tensorflow-io 0.37.1's librdkafka resolves ``auto.offset.reset`` with ListOffsets v0,
    which Kafka 4 removed: a group without committed offsets waits forever. Committed
    offsets at the log start are what ``earliest`` would have found.
    """
    consumer = make_consumer(kafka, group)
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        offsets = [
            TopicPartition(
                topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[0]
            )
            for p in sorted(partitions)
        ]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
