"""Pipelines: a stream of readings declared by a schema, its topics, its schema registry.

`Pipeline` is what every stage works with (the current schema, older versions for decoding,
topic names, default model and consumer groups); `SchemaRegistry` keeps the versions on the
``lakeless.schemas`` topic; `resolve_pipeline` gives the stage the pipeline its settings name.
``lakeless pipeline create|list|show`` is the command line.
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.pipeline._model import (
    DEFAULT_PIPELINE,
    NAME_PATTERN,
    Pipeline,
    PipelineTopics,
    PipelineVersion,
    check_pipeline_name,
)

if TYPE_CHECKING:
    from lakeless.pipeline._registry import (
        PipelineError,
        SchemaRegistry,
        pipeline_topic_specs,
        resolve_pipeline,
    )

__all__ = [
    "DEFAULT_PIPELINE",
    "NAME_PATTERN",
    "Pipeline",
    "PipelineError",
    "PipelineTopics",
    "PipelineVersion",
    "SchemaRegistry",
    "check_pipeline_name",
    "pipeline_topic_specs",
    "resolve_pipeline",
]

__getattr__ = lazy_attributes(
    __name__,
    {"._registry": ["PipelineError", "SchemaRegistry", "pipeline_topic_specs", "resolve_pipeline"]},
)
