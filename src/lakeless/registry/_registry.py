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
from collections.abc import Sequence
from pathlib import Path
from typing import Unpack

import msgspec
from confluent_kafka import Producer

from lakeless._mixins import Closing
from lakeless.config import Settings
from lakeless.registry._errors import RegistryError
from lakeless.registry._log import (
    append,
    fetch_entry,
    fold,
    make_registry_producer,
    registry_reader,
)
from lakeless.registry._record import (
    ModelRecord,
    ModelSummary,
    RecordFields,
    Stage,
    StageChange,
    build_record,
    check_name,
)
from lakeless.registry._settings import RegistrySettings
from lakeless.registry._state import RegistryState, VersionRef
from lakeless.registry._validate import check_checksum, model_bytes, validate

__all__ = ["Registry"]

logger = logging.getLogger(__name__)

#: ONNX models up to this size travel inside their record (the topic takes 64 MiB records).


class Registry(Closing):
    """The model registry on the ``settings.topics.models`` topic.

    Args:
        settings: Kafka connection and topic names.
        options: storage and timeouts (default: ``settings.registry``).

    Example:
        ``with Registry(load_settings()) as registry: registry.promote("car-ae", 3)``
    """

    def __init__(self, settings: Settings, options: RegistrySettings | None = None) -> None:
        self.settings = settings
        self.options = options or settings.registry
        self.topic = settings.topics.models
        #: The registry's cluster (``options.bootstrap_servers``, else the data's).
        self.kafka = self.options.kafka(settings.kafka)
        self._reader = registry_reader(self.kafka, self.topic, self.options.timeout)
        self._producer: Producer | None = None

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
        return fold(self._reader)

    def register(
        self,
        name: str,
        onnx_bytes: bytes,
        *,
        stage: Stage = "candidate",
        check: bool = True,
        **fields: Unpack[RecordFields],
    ) -> ModelRecord:
        """Append a new version of model ``name``; return its record (version assigned).

        Args:
            name: model name (letters, digits, ``_.-``).
            onnx_bytes: the serialized model, honouring `lakeless.model.onnx`'s contract.
            stage: ``candidate`` (default) or ``live`` (register and promote at once).
            check: validate the model against its own feature list first (`validate`).
            **fields: the record's metadata, as `build_record` takes it: ``threshold`` and
                ``features`` (required), ``pipeline``, ``schema_fingerprint``, ``normalization``,
                ``metrics``, ``lineage`` (what it was trained on: the dataset reader's resolved
                offsets), ``frameworks`` (Python, lakeless, ONNX Runtime are added), ``params``,
                ``report``, ``description``.

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
                stage=stage,
                uri=uri,
                **fields,
            )
            if check and attempt == 1:
                validate(record, record.features)
            offset = append(self._get_producer(), self.topic, record, self.options.timeout)
            fold(self._reader, state, end=offset + 1)
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
        features: Sequence[str] | None = None,
        pipeline: str | None = None,
    ) -> StageChange:
        """Make a version the live one; the version that was live becomes archived.

        Promoting an older version is how to roll back.

        Args:
            name: model name.
            version: the version (see `get`; ``"latest"`` promotes the newest).
            check: refuse to promote a model scorers would refuse (`validate`).
            features: the features of the pipeline's current schema (default: the model's own).
            pipeline: the pipeline scorers read (default: not checked).

        Raises:
            ModelNotFoundError: no such model or version.
            ModelRejected: ``check`` is on and the model fails validation.
            RegistryError: Kafka failed.
        """
        state = self.state()
        number = state.resolve(name, version)
        if check:
            record = self._fetch(state, name, number)
            validate(record, record.features if features is None else features, pipeline)
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
        entry = fetch_entry(self.kafka, self.topic, offset, self.options.timeout)
        if not isinstance(entry, ModelRecord):
            raise RegistryError(f"{self.topic}[0]@{offset} is not a model record")
        return msgspec.structs.replace(entry, stage=state.stage(name, version))

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = make_registry_producer(self.kafka)
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
