"""The schema registry on Kafka: every pipeline version is one JSON record on ``lakeless.schemas``.

Like the model registry, a one-partition log kept forever, read from the beginning by whoever
needs it; the state is the fold of the log (``docs/data-contract.md`` §2). ``create`` is
idempotent: registering the schema a pipeline has already is a no-op, a changed schema becomes
the next version when `lakeless.schema.check_evolution` allows it.

`resolve_pipeline` is how every stage finds its pipeline: the registered versions of the name
its settings give, or the built-in car fleet when that is the name and nothing is registered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence

from lakeless.config import Settings
from lakeless.errors import KafkaError
from lakeless.kafka import (
    LogReader,
    TopicSpec,
    append_record,
    check_cluster,
    make_producer,
    pipeline_topics,
)
from lakeless.pipeline._model import DEFAULT_PIPELINE, Pipeline, PipelineVersion
from lakeless.schema import SchemaError, check_evolution

__all__ = ["PipelineError", "SchemaRegistry", "pipeline_topic_specs", "resolve_pipeline"]

logger = logging.getLogger(__name__)


class PipelineError(KafkaError):
    """A pipeline is unknown, cannot be registered, or the schema registry cannot be read."""


class SchemaRegistry:
    """Reads and appends pipeline versions on ``settings.topics.schemas``.

    Args:
        settings: connection and topic names.
        timeout: seconds any one read or write may take.
    """

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.topic = settings.topics.schemas
        self.timeout = timeout

    def versions(self) -> dict[str, list[PipelineVersion]]:
        """Every registered version by pipeline name, oldest first.

        Raises:
            PipelineError: the topic is missing or cannot be read.
        """
        reader = LogReader(self.settings.kafka, self.topic, self.timeout, error_type=PipelineError)
        out: dict[str, list[PipelineVersion]] = {}
        try:
            for message in reader.read():
                try:
                    version = PipelineVersion.from_json(
                        json.loads(message.value() or b"null"), message.offset()
                    )
                except (ValueError, TypeError, KeyError, SchemaError) as exc:
                    logger.warning(
                        "skipping unreadable schema record %s[0]@%d: %s",
                        self.topic,
                        message.offset(),
                        exc,
                    )
                    continue
                out.setdefault(version.pipeline, []).append(version)
        finally:
            reader.close()
        return out

    def get(self, name: str) -> Pipeline | None:
        """The registered pipeline ``name``, or ``None``."""
        versions = self.versions().get(name)
        return Pipeline(name, tuple(versions)) if versions else None

    def pipelines(self) -> list[Pipeline]:
        """Every registered pipeline, by name."""
        return [Pipeline(n, tuple(v)) for n, v in sorted(self.versions().items())]

    def create(
        self,
        candidate: Pipeline,
        *,
        live_features: Callable[[Pipeline], Mapping[str, Sequence[str]]] | None = None,
    ) -> tuple[Pipeline, bool]:
        """Register ``candidate``'s schema: a first version, or the next one.

        Args:
            candidate: the pipeline as `Pipeline.new` gives it (name, schema, partitions).
            live_features: the live models of the registered pipeline and their inputs (to
                refuse removing a feature a live model uses).

        Returns:
            The registered pipeline and whether a version was appended.

        Raises:
            PipelineError: the schema cannot follow the registered ones, or Kafka failed.
        """
        existing = self.get(candidate.name)
        schema = candidate.schema
        if existing is None:
            version = candidate.current
        else:
            if any(v.schema == schema for v in existing.versions[-1:]):
                return existing, False
            try:
                check_evolution(
                    [v.schema for v in existing.versions],
                    schema,
                    live_features(existing) if live_features else None,
                )
            except SchemaError as exc:
                raise PipelineError(
                    f"pipeline {candidate.name}: the new schema cannot replace version "
                    f"{existing.version}: {exc}"
                ) from exc
            version = existing.with_version(schema)
        producer = make_producer(self.settings.kafka, linger_ms=0)
        offset = append_record(
            producer,
            self.topic,
            candidate.name.encode(),
            json.dumps(version.to_json(), separators=(",", ":")).encode(),
            what=f"pipeline {candidate.name} v{version.version}",
            headers=[("lakeless.kind", b"pipeline")],
            timeout=self.timeout,
            error_type=PipelineError,
        )
        logger.info(
            "registered pipeline %s v%d (schema %s) at %s[0]@%d",
            candidate.name,
            version.version,
            schema.fingerprint_hex,
            self.topic,
            offset,
        )
        registered = self.get(candidate.name)
        if registered is None:  # pragma: no cover - just written
            raise PipelineError(f"pipeline {candidate.name} not readable after registering it")
        return registered, True


def resolve_pipeline(settings: Settings, name: str | None = None) -> Pipeline:
    """The pipeline ``name`` (default: ``settings.pipeline``) as registered on the cluster.

    The built-in car fleet needs no registration: unregistered, it is `Pipeline.builtin`.

    Raises:
        ClusterUnavailable: the cluster does not answer (within 10 s).
        PipelineError: no such pipeline is registered (the message says how to create it), or
            the registry cannot be read.
    """
    name = name or settings.pipeline
    existing = check_cluster(settings.kafka)  # a missing cluster fails fast and says so
    if name == DEFAULT_PIPELINE and settings.topics.schemas not in existing:
        return Pipeline.builtin(settings)
    registry = SchemaRegistry(settings)
    registered = registry.get(name) if settings.topics.schemas in existing else None
    if registered is not None:
        return registered
    if name == DEFAULT_PIPELINE:
        return Pipeline.builtin(settings)
    raise PipelineError(
        f"pipeline {name!r} is not registered on {settings.kafka.bootstrap_servers}; create it "
        f"with `lakeless pipeline create {name} --schema FILE.avsc`"
    )


def pipeline_topic_specs(settings: Settings, pipeline: Pipeline) -> list[TopicSpec]:
    """The topics of ``pipeline`` (and the registries), with the settings' defaults."""
    topics = pipeline.topics
    return pipeline_topics(
        settings.topics,
        (topics.raw, topics.clean, topics.dlq, topics.anomalies, topics.scores),
        pipeline.current.partitions,
    )
