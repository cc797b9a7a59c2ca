"""The Kafka Streams scorer of ``jvm/streams`` as a ``bench score`` peer.

`run_kafka_streams` runs its bench entry point (``io.lakeless.streams.ScorerBench``, one JVM
with ``java -cp`` over the module's jar and ``target/lib``) on a pre-filled clean topic with the
registry's live model, per record (``kafka-streams-per-record``, the talk's way) or batched
(``kafka-streams-batched``: one ONNX Runtime call per ``batch_size`` records or ``batch_ms``),
and turns its one JSON line ``{records, seconds, rate, ...}`` into a `BenchResult`. The rate is
steady state: from the first scored batch to the last; start-up, model load and group join are
in ``extra["startup_seconds"]``. `make setup` builds the module; without it the result is a
skipped one.

Example:
    >>> print(jvm_properties({"bootstrap.servers": "127.0.0.1:9092", "lakeless.batch.size": 1}))
    bootstrap.servers=127.0.0.1:9092
    lakeless.batch.size=1
    <BLANKLINE>
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from lakeless.bench._peer import run_json_command
from lakeless.bench._result import BenchResult, skipped
from lakeless.config import KafkaSettings

__all__ = [
    "STREAMS_BATCHED",
    "STREAMS_PER_RECORD",
    "jvm_properties",
    "run_kafka_streams",
    "streams_classpath",
]

logger = logging.getLogger(__name__)

STREAMS_PER_RECORD: Final = "kafka-streams-per-record"
STREAMS_BATCHED: Final = "kafka-streams-batched"
_MAIN: Final = "io.lakeless.streams.ScorerBench"
#: ``jvm/streams/target`` of this checkout (an editable install sits in ``<repo>/src/lakeless``).
_TARGET: Final = Path(__file__).resolve().parents[3] / "jvm" / "streams" / "target"

Mode = Literal["per-record", "batched"]


def streams_classpath(target: Path = _TARGET) -> str | None:
    """``java -cp`` of the built Kafka Streams module, or ``None`` when it is not built."""
    jars = sorted(target.glob("lakeless-streams-*.jar"))
    if not jars or not (target / "lib").is_dir():
        return None
    return f"{jars[0]}{os.pathsep}{target / 'lib'}/*"


def jvm_properties(settings: Mapping[str, Any]) -> str:
    """A Java properties file's text for ``settings`` (values as given, one per line)."""
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def run_kafka_streams(
    kafka: KafkaSettings,
    *,
    clean_topic: str,
    records: int,
    mode: Mode,
    models_topic: str = "lakeless.models",
    model: str = "car-autoencoder",
    anomalies_topic: str | None = None,
    schema_file: Path | None = None,
    pipeline: str = "car-fleet",
    batch_size: int = 1000,
    batch_ms: int = 100,
    heap: str = "1g",
    timeout: float = 1800.0,
    target: Path = _TARGET,
) -> BenchResult:
    """Score ``records`` records of ``clean_topic`` with the Kafka Streams app; one JVM.

    Args:
        kafka: the cluster (bootstrap servers; security settings are not passed on here).
        clean_topic: the pre-filled topic in clean layout v2 (docs/data-contract.md).
        records: stop after this many scored records.
        mode: ``per-record`` (one ONNX call per record) or ``batched``.
        models_topic: the registry topic holding a live version of ``model``.
        model: the model name.
        anomalies_topic: where anomalies go (the pipeline's own topic by default).
        schema_file: the pipeline's ``.avsc``; ``None``: read ``lakeless.schemas``.
        pipeline: the pipeline name.
        batch_size: records per ONNX call in ``batched`` mode.
        batch_ms: longest a batch stays open in ``batched`` mode.
        heap: the JVM's ``-Xmx``.
        timeout: seconds before the run counts as failed.
        target: the module's build folder.

    Returns:
        ``kafka-streams-per-record`` or ``kafka-streams-batched``; failed or skipped (with the
        reason in ``extra``) when the module is not built or the run fails.
    """
    name = STREAMS_PER_RECORD if mode == "per-record" else STREAMS_BATCHED
    classpath = streams_classpath(target)
    if classpath is None:
        return skipped(name, "jvm/streams not built")
    settings: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "lakeless.pipeline": pipeline,
        "lakeless.model": model,
        "lakeless.models.topic": models_topic,
        "lakeless.topic.clean": clean_topic,
        "lakeless.batch.size": 1 if mode == "per-record" else batch_size,
        "lakeless.batch.ms": batch_ms,
    }
    if anomalies_topic is not None:
        settings["lakeless.topic.anomalies"] = anomalies_topic
    if schema_file is not None:
        settings["lakeless.schema.file"] = str(schema_file)
    with tempfile.TemporaryDirectory(prefix="lakeless-jvm-bench-") as tmp:
        settings["state.dir"] = str(Path(tmp) / "state")
        config = Path(tmp) / "bench.properties"
        config.write_text(jvm_properties(settings))
        command = ["java", f"-Xmx{heap}", "-cp", classpath, _MAIN, str(config), str(records)]
        answer = run_json_command(name, command, timeout=timeout)
    if isinstance(answer, BenchResult):
        return answer
    extra = {k: v for k, v in answer.items() if k not in ("records", "seconds", "rate")}
    return BenchResult(name, int(answer["records"]), float(answer["seconds"]), extra)
