"""The data contract: a pipeline's Avro schema, its JSON events, the clean layout, the outputs.

Everything a stage knows about the data derives from one `PipelineSchema` (``load_schema``):
validation (`EventCodec`'s generated type), the ``NAME.clean`` binary layout (`CleanCodec`,
`Decoder`), model inputs (`PipelineSchema.feature_names`) and output records
(`lakeless.schema.outputs`). The formats are specified in ``docs/data-contract.md``; this package
imports no Kafka client, so every stage, and any user, can use it alone.
"""

from lakeless.schema._clean import (
    HEADER,
    LAYOUT_VERSION,
    BadValue,
    CleanBatch,
    CleanCodec,
    Decoder,
    concat,
    empty_batch,
    numeric_dtype,
)
from lakeless.schema._events import EventCodec, event_type
from lakeless.schema._evolution import check_evolution
from lakeless.schema._model import (
    DEFAULT_KEY_PATTERN,
    DEFAULT_MAX_LENGTH,
    FieldSpec,
    PipelineSchema,
    SchemaError,
    load_schema,
)

__all__ = [
    "DEFAULT_KEY_PATTERN",
    "DEFAULT_MAX_LENGTH",
    "HEADER",
    "LAYOUT_VERSION",
    "BadValue",
    "CleanBatch",
    "CleanCodec",
    "Decoder",
    "EventCodec",
    "FieldSpec",
    "PipelineSchema",
    "SchemaError",
    "check_evolution",
    "concat",
    "empty_batch",
    "event_type",
    "load_schema",
    "numeric_dtype",
]
