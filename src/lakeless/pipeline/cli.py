"""``lakeless pipeline create|list|show``: pipelines declared by an Avro schema file."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lakeless._cli import console

if TYPE_CHECKING:
    from lakeless.config import Settings
    from lakeless.pipeline import Pipeline

pipeline_app = typer.Typer(
    help="Pipelines: a stream of readings declared by an Avro schema file (.avsc).",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


@pipeline_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Pipeline name (letters, digits, '_', '-').")],
    schema: Annotated[
        Path, typer.Option("--schema", help="The Avro record schema file (.avsc).", dir_okay=False)
    ],
    partitions: Annotated[
        int, typer.Option(min=1, max=10_000, help="Partitions of the pipeline's topics.")
    ] = 6,
    as_json: AsJson = False,
) -> None:
    """Register a schema (a first version, or the next one) and create the pipeline's topics.

    Idempotent: the same schema again changes nothing. A changed schema becomes the next
    version when Avro's evolution rules allow it (a new field needs a default; a live model's
    feature cannot be removed).
    """
    from lakeless.config import load_settings
    from lakeless.kafka import create_topics
    from lakeless.pipeline import DEFAULT_PIPELINE, Pipeline, SchemaRegistry, pipeline_topic_specs
    from lakeless.schema import load_schema

    settings = load_settings()
    parsed = load_schema(schema)
    if name == DEFAULT_PIPELINE:  # the built-in's topic names and model, the given schema
        builtin = Pipeline.builtin(settings).current
        candidate = Pipeline(name, (replace(builtin, schema=parsed, partitions=partitions),))
    else:
        candidate = Pipeline.new(name, parsed, partitions=partitions)
    registry = SchemaRegistry(settings)
    create_topics(settings.kafka, pipeline_topic_specs(settings, candidate))
    registered, appended = registry.create(candidate, live_features=_live_features(settings))
    create_topics(settings.kafka, pipeline_topic_specs(settings, registered))
    if as_json:
        typer.echo(json.dumps({**registered.summary, "created_version": appended}))
        return
    what = f"registered version {registered.version}" if appended else "unchanged"
    console.print(
        f"pipeline {name}: {what} (schema {registered.schema.fingerprint_hex}, "
        f"{len(registered.schema.features)} features); topics "
        + ", ".join(registered.topics.to_dict().values())
    )


@pipeline_app.command("list")
def list_pipelines(as_json: AsJson = False) -> None:
    """The registered pipelines (and the built-in car fleet)."""
    from rich.table import Table

    from lakeless.config import load_settings
    from lakeless.pipeline import DEFAULT_PIPELINE, Pipeline, SchemaRegistry

    settings = load_settings()
    pipelines = SchemaRegistry(settings).pipelines()
    if DEFAULT_PIPELINE not in {p.name for p in pipelines}:
        pipelines.insert(0, Pipeline.builtin(settings))
    if as_json:
        typer.echo(json.dumps([p.summary for p in pipelines]))
        return
    table = Table("pipeline", "version", "features", "key", "time", "raw topic", "model")
    for p in pipelines:
        version = "built-in" if p.is_builtin else str(p.version)
        table.add_row(
            p.name,
            version,
            str(len(p.schema.features)),
            p.schema.key,
            p.schema.time,
            p.topics.raw,
            p.model,
        )
    console.print(table)


@pipeline_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    as_json: AsJson = False,
) -> None:
    """A pipeline's schema roles, features (units, ranges), topics and versions."""
    from rich.table import Table

    from lakeless.config import load_settings
    from lakeless.pipeline import resolve_pipeline

    pipeline = resolve_pipeline(load_settings(), name)
    if as_json:
        typer.echo(json.dumps({**pipeline.summary, "schema": dict(pipeline.schema.raw)}))
        return
    summary = pipeline.summary
    console.print(
        f"pipeline {pipeline.name} v{pipeline.version} ({summary['schema_name']}, fingerprint "
        f"{summary['fingerprint']}): key {summary['key']}, time {summary['time']}, sequence "
        f"{summary['sequence']}, label {summary['label']}, context {summary['context']}"
    )
    table = Table("feature", "type", "unit", "min", "max")
    for feature in summary["features"]:
        table.add_row(
            feature["name"],
            feature["type"],
            feature["unit"],
            str(feature["min"]),
            str(feature["max"]),
        )
    console.print(table)
    console.print("topics: " + ", ".join(f"{k} {v}" for k, v in summary["topics"].items()))


def _live_features(settings: Settings) -> Callable[[Pipeline], Mapping[str, Sequence[str]]]:
    """The inputs of every live model of a pipeline (evolution must keep them)."""
    from lakeless.registry import Registry, RegistryError

    def live(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
        try:
            with Registry(settings) as registry:
                state = registry.state()
                out = {}
                for model in state.names():
                    version = state.live_version(model)
                    if version is None:
                        continue
                    summary = state.summary(model, version)
                    if summary.pipeline == pipeline.name:
                        out[summary.ref] = tuple(summary.features)
                return out
        except RegistryError:
            return {}

    return live
