"""Streams of plausible readings of any pipeline schema, and the anomalies a perfect detector flags.

For tests of stages that keep state per entity (the twin, the dashboard): `readings` gives a few
entities' readings in time order, every feature a bounded random walk inside its schema range,
context fields fixed per entity, and (when the schema has a label) labelled fault windows;
`perfect_anomalies` gives one anomaly record per labelled reading.

Example:
    >>> from lakeless.examples import example_schema
    >>> pumps = example_schema("pumps")
    >>> events = readings(pumps, entities=2, seconds=3)
    >>> [(e.pump_id, e.timestamp - START) for e in events][:3]
    [('pump-000', 0), ('pump-001', 0), ('pump-000', 1000)]
    >>> 0 <= events[0].flow_rate <= 500, type(events[0].speed_rpm)
    (True, <class 'int'>)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Final

from lakeless.schema import EventCodec, FieldSpec, PipelineSchema
from lakeless.schema.outputs import AnomalyRecord, OutputCodec, TopFeature

__all__ = ["START", "perfect_anomalies", "readings"]

#: Event time of the first reading by default (2023-11-14, ms since the epoch).
START: Final = 1_700_000_000_000


def _entity_name(schema: PipelineSchema, index: int) -> str:
    stem = schema.key.removesuffix("_id").removesuffix("id").strip("_") or "entity"
    return f"{stem}-{index:03d}"


def _context_value(spec: FieldSpec, index: int) -> Any:
    if spec.symbols:
        return spec.symbols[index % len(spec.symbols)]
    return f"{spec.name}-{index % 2}"


def _label_value(spec: FieldSpec, index: int) -> str:
    return spec.symbols[index % len(spec.symbols)] if spec.symbols else "fault"


def _bounds(spec: FieldSpec) -> tuple[float, float]:
    centre = float(spec.example) if isinstance(spec.example, int | float) else 0.0
    low = spec.min if spec.min is not None else centre - 100.0
    high = spec.max if spec.max is not None else centre + 100.0
    # The int types' implicit ranges are huge: walk near the example instead.
    span = min(high - low, 1000.0 if spec.integer else math.inf)
    return max(low, centre - span / 2), min(high, centre + span / 2)


def readings(
    schema: PipelineSchema,
    entities: int = 3,
    seconds: int = 60,
    *,
    start: int = START,
    interval_ms: int = 1000,
    seed: int = 0,
    fault_every: int | None = 4,
    fault_length: int = 5,
) -> list[Any]:
    """Readings of ``entities`` entities, one each per ``interval_ms`` for ``seconds`` steps.

    Args:
        schema: the pipeline schema (the events are of its generated event type).
        entities: how many entities (keys ``<key stem>-000``, ...).
        seconds: steps per entity.
        start: event time of the first step, ms since the epoch.
        interval_ms: event time between two steps.
        seed: random seed (same arguments, same readings).
        fault_every: with a label field, entity ``i`` is labelled faulty for ``fault_length``
            steps from step ``fault_every * (i + 1)`` on, every other entity only
            (``None``: never).
        fault_length: steps a fault lasts.

    Returns:
        Event objects in time order (all entities at one step, then the next step).
    """
    rng = random.Random(seed)
    codec = EventCodec(schema)
    features = schema.features
    bounds = {f.name: _bounds(f) for f in features}
    state = [{f.name: rng.uniform(*bounds[f.name]) for f in features} for _ in range(entities)]
    out = []
    for step in range(seconds):
        for index in range(entities):
            values: dict[str, Any] = {
                schema.key: _entity_name(schema, index),
                schema.time: start + step * interval_ms,
            }
            if schema.sequence is not None:
                values[schema.sequence] = step
            for name in schema.context:
                values[name] = _context_value(schema.field(name), index)
            walk = state[index]
            for spec in features:
                low, high = bounds[spec.name]
                value = walk[spec.name] + rng.gauss(0, (high - low) / 50)
                walk[spec.name] = value = min(high, max(low, value))
                if spec.type == "boolean":
                    values[spec.name] = value > (low + high) / 2
                elif spec.integer:
                    values[spec.name] = round(value)
                elif spec.type == "float":
                    values[spec.name] = round(value, 3)  # exact in float32's 7 digits
                else:
                    values[spec.name] = value
            if schema.label is not None:
                faulty = (
                    fault_every is not None
                    and index % 2 == 0
                    and 0 <= step - fault_every * (index + 1) < fault_length
                )
                values[schema.label] = (
                    _label_value(schema.field(schema.label), index) if faulty else None
                )
            for spec in schema.fields:  # anything else (ignored strings) takes its example
                values.setdefault(spec.name, spec.example)
            out.append(codec.from_dict(values))
    return out


def perfect_anomalies(
    schema: PipelineSchema,
    events: Sequence[Any],
    *,
    model: str = "test-model",
    version: int = 1,
    labelled: bool = True,
) -> list[AnomalyRecord]:
    """The anomaly records a perfect detector writes for ``events`` (their labelled ones).

    Args:
        schema: the pipeline schema.
        events: readings of that schema.
        model: the model name in the records.
        version: the model version in the records.
        labelled: only the labelled events (``False``: every event).
    """
    outputs = OutputCodec(schema)
    first = schema.features[0].name
    out = []
    for i, event in enumerate(events):
        label = getattr(event, schema.label) if schema.label else None
        if labelled and label is None:
            continue
        out.append(
            outputs.anomaly(
                key=getattr(event, schema.key),
                time=getattr(event, schema.time),
                sequence=getattr(event, schema.sequence) if schema.sequence else None,
                score=4.0 + (i % 100) / 100,
                threshold=1.5,
                model=model,
                model_version=version,
                top_features=[TopFeature(first, float(getattr(event, first)), 2.0)],
                label=label,
                source=f"test.clean[0]@{i}",
            )
        )
    return out
