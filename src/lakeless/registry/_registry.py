"""`Registry`: register, list, get, promote and export models on ``lakeless.models``.

Every call reads the log afresh (it is small) and folds it into a `RegistryState`, so two
processes never disagree for longer than a read.

Version assignment under concurrency: `Registry.register` takes "highest version + 1", appends,
then reads the log up to its own record. If another registration of the same name and version
landed first (a lower offset wins the fold), its record is a duplicate that every reader ignores,
and it registers again under the next version, up to ``RegistrySettings.register_attempts``
times. The version it returns is therefore always the one every reader sees.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import msgspec
from confluent_kafka import Producer
from pydantic import BaseModel, ConfigDict, Field

from lakeless.config import Settings
from lakeless.registry._errors import RegistryError
from lakeless.registry._log import LogReader, append, fetch_entry, make_registry_producer
from lakeless.registry._record import (
    ModelRecord,
    ModelSummary,
    Stage,
    StageChange,
    build_record,
    check_name,
)
from lakeless.registry._state import RegistryState, VersionRef
from lakeless.registry._validate import check_checksum, model_bytes, validate
from lakeless.schema import FEATURES

__all__ = ["DEFAULT_MAX_INLINE_BYTES", "Registry", "RegistrySettings"]

logger = logging.getLogger(__name__)

#: ONNX models up to this size travel inside their record (the topic takes 64 MiB records).
DEFAULT_MAX_INLINE_BYTES: Final = 48 * 1024 * 1024


class RegistrySettings(BaseModel):
    """How the registry stores models and waits on Kafka.

    Attributes:
        max_inline_bytes: larger ONNX models are written to `artifact_dir` and the record
            carries a ``file://`` URI instead of the bytes.
        artifact_dir: where too-large models go; a shared filesystem in a multi-host setup.
            ``None``: registering a too-large model fails.
        timeout: seconds one read of the log or one acknowledgement may take.
        register_attempts: registrations that lost a version race are retried this often.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_inline_bytes: int = Field(default=DEFAULT_MAX_INLINE_BYTES, ge=1, le=60 * 1024 * 1024)
    artifact_dir: Path | None = None
    timeout: float = Field(default=30.0, gt=0)
    register_attempts: int = Field(default=5, ge=1)


class Registry:
    """The model registry on the ``settings.topics.models`` topic.

    Args:
        settings: Kafka connection and topic names.
        options: storage and timeouts.

    Example:
        ``with Registry(load_settings()) as registry: registry.promote("car-ae", 3)``
    """

    def __init__(self, settings: Settings, options: RegistrySettings | None = None) -> None:
        self.settings = settings
        self.options = options or RegistrySettings()
        self.topic = settings.topics.models
        self._reader = LogReader(settings.kafka, self.topic, self.options.timeout)
        self._producer: Producer | None = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the Kafka clients."""
        self._reader.close()
        if self._producer is not None:
            self._producer.flush(self.options.timeout)
            self._producer = None

    def state(self) -> RegistryState:
        """The fold of the whole log as it is now.

        Raises:
            RegistryError: the topic is missing or cannot be read.
        """
        return self._reader.fold()

    def register(
        self,
        name: str,
        onnx_bytes: bytes,
        *,
        threshold: float,
        features: Sequence[str] = FEATURES,
        normalization: Mapping[str, Sequence[float]] | None = None,
        metrics: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        frameworks: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        report: Mapping[str, Any] | None = None,
        description: str = "",
        stage: Stage = "candidate",
        check: bool = True,
    ) -> ModelRecord:
        """Append a new version of model ``name``; return its record (version assigned).

        Args:
            name: model name (letters, digits, ``_.-``).
            onnx_bytes: the serialized model, honouring `lakeless.model.onnx`'s contract.
            threshold: anomaly threshold on the score.
            features: model inputs in order.
            normalization: per-feature statistics (e.g. ``mean`` / ``variance`` lists).
            metrics: evaluation results.
            lineage: what it was trained on (the dataset reader's resolved offsets).
            frameworks: library versions (Python, lakeless, ONNX Runtime are added).
            params: hyperparameters.
            report: training report.
            description: free text.
            stage: ``candidate`` (default) or ``live`` (register and promote at once).
            check: validate the model against its own feature list first (`validate`).

        Raises:
            ModelRejected: ``check`` is on and the model would be refused by scorers.
            RegistryError: too large without an ``artifact_dir``, or Kafka failed.
            ValueError: invalid name or stage.
        """
        check_name(name)
        if stage not in ("candidate", "live"):
            raise ValueError(f"a model registers as candidate or live, not {stage}")
        state = self.state()
        for attempt in range(1, self.options.register_attempts + 1):
            version = state.next_version(name)
            uri = None
            if len(onnx_bytes) > self.options.max_inline_bytes:
                uri = self._store(name, version, onnx_bytes)
            record = build_record(
                name,
                version,
                onnx_bytes,
                threshold=threshold,
                features=features,
                normalization=normalization,
                metrics=metrics,
                lineage=lineage,
                frameworks=frameworks,
                params=params,
                report=report,
                description=description,
                stage=stage,
                uri=uri,
            )
            if check and attempt == 1:
                validate(record, expected_features=record.features)
            offset = append(self._get_producer(), self.topic, record, self.options.timeout)
            self._reader.fold(state, end=offset + 1)
            if state.offsets.get((name, version)) == offset:
                logger.info(
                    "registered model %s v%d (%s, %d bytes%s) at %s[0]@%d",
                    name,
                    version,
                    stage,
                    len(onnx_bytes),
                    f", at {uri}" if uri else "",
                    self.topic,
                    offset,
                )
                return record
            logger.warning(
                "model %s v%d was registered concurrently by someone else; registering again "
                "as the next version (attempt %d)",
                name,
                version,
                attempt,
            )
            if uri is not None:
                Path(self.options.artifact_dir or ".", _artifact_name(name, version)).unlink(
                    missing_ok=True
                )
        raise RegistryError(
            f"could not register {name}: lost the version race "
            f"{self.options.register_attempts} times"
        )

    def list(self, name: str | None = None) -> builtins.list[ModelSummary]:
        """Every registered version (of ``name`` only, if given), with current stages.

        Raises:
            RegistryError: the topic is missing or cannot be read.
        """
        return self.state().summaries(name)

    def get(self, name: str, version: VersionRef = None) -> ModelRecord:
        """A registered model with its ONNX bytes (or URI) and its current stage.

        Args:
            name: model name.
            version: a number, ``"live"``, ``"latest"``, or ``None`` for the live version if
                there is one, else the latest.

        Raises:
            ModelNotFoundError: no such model or version.
            RegistryError: the log cannot be read.
        """
        state = self.state()
        return self._fetch(state, name, state.resolve(name, version))

    def live(self, name: str) -> ModelRecord | None:
        """The live version of ``name``, or ``None`` when it has none (or is unknown)."""
        state = self.state()
        version = state.live_version(name)
        return None if version is None else self._fetch(state, name, version)

    def promote(
        self,
        name: str,
        version: VersionRef,
        *,
        check: bool = True,
        expected_features: Sequence[str] = FEATURES,
    ) -> StageChange:
        """Make a version the live one; the version that was live becomes archived.

        Promoting an older version is how to roll back.

        Args:
            name: model name.
            version: the version (see `get`; ``"latest"`` promotes the newest).
            check: refuse to promote a model scorers would refuse (`validate` against
                ``expected_features``).
            expected_features: what scorers feed.

        Raises:
            ModelNotFoundError: no such model or version.
            ModelRejected: ``check`` is on and the model fails validation.
            RegistryError: Kafka failed.
        """
        state = self.state()
        number = state.resolve(name, version)
        if check:
            validate(self._fetch(state, name, number), expected_features)
        change = StageChange(name=name, version=number, stage="live", at=int(time.time() * 1000))
        offset = append(self._get_producer(), self.topic, change, self.options.timeout)
        previous = state.live_version(name)
        logger.info(
            "promoted model %s v%d to live at %s[0]@%d%s",
            name,
            number,
            self.topic,
            offset,
            f" (v{previous} archived)" if previous not in (None, number) else "",
        )
        return change

    def export(self, name: str, version: VersionRef, path: Path) -> tuple[Path, Path]:
        """Write a model's ONNX file and a JSON sidecar with its metadata.

        Args:
            name: model name.
            version: which version (see `get`).
            path: the ``.onnx`` file to write, or a folder to write ``NAME-vN.onnx`` into. The
                sidecar goes beside it with the suffix ``.json``.

        Returns:
            The ONNX path and the sidecar path.

        Raises:
            ModelNotFoundError: no such model or version.
            ModelRejected: the stored bytes do not match the record's checksum.
        """
        state = self.state()
        number = state.resolve(name, version)
        record = self._fetch(state, name, number)
        data = model_bytes(record)
        check_checksum(record, data)
        onnx_path = path / f"{name}-v{number}.onnx" if path.is_dir() else path
        if onnx_path.suffix == ".json":
            raise ValueError(f"{onnx_path}: the ONNX file cannot end in .json (the sidecar does)")
        sidecar = onnx_path.with_suffix(".json")
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        onnx_path.write_bytes(data)
        sidecar.write_bytes(describe(record.summary(), self.topic, state.offsets[(name, number)]))
        return onnx_path, sidecar

    def _fetch(self, state: RegistryState, name: str, version: int) -> ModelRecord:
        offset = state.offsets[(name, version)]
        entry = fetch_entry(self.settings.kafka, self.topic, offset, self.options.timeout)
        if not isinstance(entry, ModelRecord):
            raise RegistryError(f"{self.topic}[0]@{offset} is not a model record")
        return msgspec.structs.replace(entry, stage=state.stage(name, version))

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = make_registry_producer(self.settings.kafka)
        return self._producer

    def _store(self, name: str, version: int, data: bytes) -> str:
        folder = self.options.artifact_dir
        if folder is None:
            raise RegistryError(
                f"model {name} is {len(data):,} bytes, over the {self.options.max_inline_bytes:,} "
                "that travel inside a record; set an artifact_dir to store it beside the registry"
            )
        folder.mkdir(parents=True, exist_ok=True)
        target = (folder / _artifact_name(name, version)).resolve()
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(target)  # readers never see half a file
        return target.as_uri()


def _artifact_name(name: str, version: int) -> str:
    return f"{name}-v{version}.onnx"


def describe(summary: ModelSummary, topic: str, offset: int) -> bytes:
    """Pretty JSON of ``summary`` plus where its record is (the export sidecar, ``show --json``)."""
    data = msgspec.to_builtins(summary)
    data["record"] = {"topic": topic, "partition": 0, "offset": offset}
    return msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n"
