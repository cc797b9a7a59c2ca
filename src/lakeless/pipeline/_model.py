"""A pipeline: one stream of readings with its schema versions, topics and default model.

The schema registry (`lakeless.pipeline.SchemaRegistry`) stores one `PipelineVersion` per
registered schema version on ``lakeless.schemas``; a `Pipeline` is what a stage works with:
the current schema, every earlier version (to decode old clean records), the topic names,
the default model name and the consumer group of each stage.

The built-in pipeline ``car-fleet`` (the default) exists without being registered: its schema
ships in the package and its topics keep the names lakeless always used (``sensor-raw``, ...).

Example:
    >>> from lakeless.config import Settings
    >>> fleet = Pipeline.builtin(Settings())
    >>> fleet.topics.raw, fleet.model, fleet.group("preprocess")
    ('sensor-raw', 'car-autoencoder', 'lakeless-preprocess')
    >>> pumps = Pipeline.new("pumps", fleet.schema, partitions=3)
    >>> pumps.topics.clean, pumps.model, pumps.group("score")
    ('pumps.clean', 'pumps-autoencoder', 'lakeless-score.pumps')
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Final

from lakeless._mixins import AsDict
from lakeless.config import Settings
from lakeless.errors import ConfigError
from lakeless.schema import Decoder, PipelineSchema, load_schema

__all__ = [
    "DEFAULT_PIPELINE",
    "NAME_PATTERN",
    "Pipeline",
    "PipelineTopics",
    "PipelineVersion",
    "check_pipeline_name",
]

#: The pipeline every command uses without ``--pipeline``.
DEFAULT_PIPELINE: Final = "car-fleet"
#: Pipeline names: usable inside topic names (``NAME.raw``) and consumer groups.
NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
_NAME_RE: Final = re.compile(rf"^{NAME_PATTERN}\Z")
FORMAT_VERSION: Final = 1


def check_pipeline_name(name: str) -> str:
    """Return ``name`` if it is a valid pipeline name.

    Raises:
        ConfigError: it is not.
    """
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid pipeline name {name!r}: use letters, digits, '_' and '-' (at most 100, "
            "starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class PipelineTopics(AsDict):
    """The topics of one pipeline (`to_dict`: kind -> topic name)."""

    raw: str
    clean: str
    dlq: str
    anomalies: str
    scores: str

    @classmethod
    def named(cls, name: str) -> PipelineTopics:
        """``NAME.raw``, ``NAME.clean``, ``NAME.dlq``, ``NAME.anomalies``, ``NAME.scores``."""
        return cls(*(f"{name}.{kind}" for kind in ("raw", "clean", "dlq", "anomalies", "scores")))


@dataclass(frozen=True)
class PipelineVersion:
    """One registered version of a pipeline (one record of ``lakeless.schemas``)."""

    pipeline: str
    version: int
    schema: PipelineSchema
    topics: PipelineTopics
    model: str
    partitions: int
    created_at: int
    offset: int = -1

    def to_json(self) -> dict[str, Any]:
        """The record value (``docs/data-contract.md`` §2)."""
        return {
            "kind": "pipeline",
            "format_version": FORMAT_VERSION,
            "pipeline": self.pipeline,
            "version": self.version,
            "fingerprint": self.schema.fingerprint_hex,
            "created_at": self.created_at,
            "topics": self.topics.to_dict(),
            "model": self.model,
            "partitions": self.partitions,
            "schema": dict(self.schema.raw),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any], offset: int = -1) -> PipelineVersion:
        """Parse a record value.

        Raises:
            ValueError: not a pipeline record this code reads (or its schema is invalid).
        """
        if value.get("kind") != "pipeline" or value.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not a pipeline record of format {FORMAT_VERSION}: kind "
                f"{value.get('kind')!r}, format_version {value.get('format_version')!r}"
            )
        schema = load_schema(value["schema"])
        if schema.fingerprint_hex != value["fingerprint"]:
            raise ValueError(
                f"fingerprint {value['fingerprint']} does not match its schema "
                f"({schema.fingerprint_hex})"
            )
        return cls(
            pipeline=str(value["pipeline"]),
            version=int(value["version"]),
            schema=schema,
            topics=PipelineTopics(**value["topics"]),
            model=str(value["model"]),
            partitions=int(value["partitions"]),
            created_at=int(value["created_at"]),
            offset=offset,
        )


@dataclass(frozen=True)
class Pipeline:
    """A pipeline as the stages see it.

    Attributes:
        name: the pipeline name.
        versions: every registered version, oldest first (at least one).
        is_builtin: the built-in default, not (yet) registered.
    """

    name: str
    versions: tuple[PipelineVersion, ...]
    is_builtin: bool = False

    @property
    def current(self) -> PipelineVersion:
        """The latest version."""
        return self.versions[-1]

    @property
    def schema(self) -> PipelineSchema:
        """The current schema."""
        return self.current.schema

    @property
    def version(self) -> int:
        """The current schema version number."""
        return self.current.version

    @property
    def topics(self) -> PipelineTopics:
        """The pipeline's topics."""
        return self.current.topics

    @property
    def model(self) -> str:
        """The default model name."""
        return self.current.model

    @property
    def create_hint(self) -> str:
        """The command that creates this pipeline's topics."""
        if self.is_builtin:
            return "lakeless topics create"
        return f"lakeless pipeline create {self.name} --schema FILE.avsc"

    def group(self, stage: str) -> str:
        """The default consumer group of ``stage`` for this pipeline."""
        if self.name == DEFAULT_PIPELINE:
            return f"lakeless-{stage}"
        return f"lakeless-{stage}.{self.name}"

    def writers(self) -> dict[bytes, PipelineSchema]:
        """Every registered schema by fingerprint (the latest version wins a shared one)."""
        return {v.schema.fingerprint: v.schema for v in self.versions}

    def decoder(self) -> Decoder:
        """A new clean-record decoder that reads every registered version."""
        return Decoder(self.schema, self.writers(), self.describe_fingerprint)

    def describe_fingerprint(self, fingerprint: bytes) -> str:
        """``v2 (c1f0...)`` for a registered fingerprint, else its hex."""
        versions = [v.version for v in self.versions if v.schema.fingerprint == fingerprint]
        label = "/".join(f"v{n}" for n in versions)
        return f"{label} ({fingerprint.hex()})" if label else fingerprint.hex()

    def version_of(self, fingerprint: bytes) -> PipelineVersion | None:
        """The newest version with this fingerprint."""
        for version in reversed(self.versions):
            if version.schema.fingerprint == fingerprint:
                return version
        return None

    @classmethod
    def builtin(cls, settings: Settings) -> Pipeline:
        """The default car-fleet pipeline with the topic names of ``settings.topics``."""
        from lakeless.examples import car_fleet

        topics = settings.topics
        version = PipelineVersion(
            pipeline=DEFAULT_PIPELINE,
            version=1,
            schema=car_fleet(),
            topics=PipelineTopics(
                topics.raw, topics.clean, topics.dlq, topics.anomalies, topics.scores
            ),
            model="car-autoencoder",
            partitions=topics.partitions,
            created_at=0,
        )
        return cls(DEFAULT_PIPELINE, (version,), is_builtin=True)

    @classmethod
    def new(
        cls,
        name: str,
        schema: PipelineSchema,
        *,
        partitions: int = 6,
        topics: PipelineTopics | None = None,
        model: str | None = None,
    ) -> Pipeline:
        """A first version of pipeline ``name`` (not registered)."""
        check_pipeline_name(name)
        version = PipelineVersion(
            pipeline=name,
            version=1,
            schema=schema,
            topics=topics or PipelineTopics.named(name),
            model=model or f"{name}-autoencoder",
            partitions=partitions,
            created_at=int(time.time() * 1000),
        )
        return cls(name, (version,))

    def with_version(self, schema: PipelineSchema) -> PipelineVersion:
        """The version that registering ``schema`` after the current one would append."""
        return replace(
            self.current,
            version=self.current.version + 1,
            schema=schema,
            created_at=int(time.time() * 1000),
            offset=-1,
        )

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """What ``lakeless pipeline show --json`` prints."""
        schema = self.schema
        return {
            "pipeline": self.name,
            "version": self.version,
            "registered": not self.is_builtin,
            "fingerprint": schema.fingerprint_hex,
            "schema_name": schema.name,
            "topics": self.topics.to_dict(),
            "model": self.model,
            "partitions": self.current.partitions,
            **schema.roles_json(),
            "features": schema.features_json(),
            "versions": [
                {
                    "version": v.version,
                    "fingerprint": v.schema.fingerprint_hex,
                    "created_at": v.created_at,
                }
                for v in self.versions
            ],
        }
