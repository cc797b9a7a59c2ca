"""The pipelines the dashboard shows: for each, its live state, its twin and its page layout.

A `PipelineView` joins what the page needs about one pipeline: the `DashboardState` the
collector feeds (with the pipeline's topics and consumer groups), a read-only `TwinReader`, the
model the page follows, and `layout`, which turns the pipeline's schema into the page (entity
table columns, one chart per unit of its features). `PipelineViews` is the thread-safe set of
them: the built-in car fleet and every registered pipeline, kept up to date by the collector.

Example:
    >>> from lakeless.examples import example_schema
    >>> [c["title"] for c in chart_groups(example_schema("pumps"))][:3]
    ['flow_rate (m3/h)', 'discharge_pressure, suction_pressure (bar)', 'motor_current (A)']
    >>> chart_groups(example_schema("car-fleet"))[8]["labels"]
    ['1_1', '1_2', '2_1', '2_2']
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lakeless.config import Settings
from lakeless.dashboard._state import STAGES, DashboardState, StageSpec
from lakeless.dashboard._twin import TwinReader
from lakeless.pipeline import Pipeline
from lakeless.schema import PipelineSchema

__all__ = ["PipelineView", "PipelineViews", "chart_groups", "entity_noun", "stage_group"]


def entity_noun(schema: PipelineSchema) -> str:
    """What one entity is called on the page: ``car_id`` -> ``car``, ``pump_id`` -> ``pump``."""
    stem = schema.key.removesuffix("_id").removesuffix("Id").removesuffix("id").strip("_")
    return (stem or "entity").replace("_", " ")


def _common(names: Sequence[str], suffix: bool = False) -> str:
    """The longest common prefix (or suffix) of ``names`` that ends (starts) at a ``_``."""
    texts = [n[::-1] for n in names] if suffix else list(names)
    common = texts[0]
    for text in texts[1:]:
        while not text.startswith(common):
            common = common[:-1]
    cut = common.rfind("_")
    common = common[: cut + 1] if cut >= 0 else ""
    return common[::-1] if suffix else common


def chart_groups(schema: PipelineSchema) -> list[dict[str, Any]]:
    """One chart per unit of the features (in schema order); a feature without a unit alone.

    Returns:
        ``{"title", "unit", "features", "labels"}`` per chart; ``labels`` are the feature
        names without what they share (``tire_pressure_1_1`` -> ``1_1``).
    """
    groups: dict[str, list[str]] = {}
    for spec in schema.features:
        groups.setdefault(spec.unit or f"\0{spec.name}", []).append(spec.name)
    charts = []
    for unit, names in groups.items():
        unit = "" if unit.startswith("\0") else unit
        labels = list(names)
        title = ", ".join(names)
        if len(names) > 1:
            head, tail = _common(names), _common(names, suffix=True)
            trimmed = [n[len(head) : len(n) - len(tail)] for n in names]
            if all(trimmed) and (head or tail):
                labels = trimmed
            if head:
                title = head.strip("_")
        charts.append(
            {
                "title": f"{title} ({unit})" if unit else title,
                "unit": unit,
                "features": names,
                "labels": labels,
            }
        )
    return charts


def stage_group(settings: Settings, pipeline: Pipeline, stage: str) -> str:
    """The consumer group of ``stage`` on ``pipeline``: the stage's setting, else its default.

    A ``group_id`` setting (``LAKELESS_SCORE__GROUP_ID``) names the group of the pipeline the
    settings work on, as it does for the stage itself.
    """
    if pipeline.name == settings.pipeline:
        section = getattr(settings, stage, None)
        configured = getattr(section, "group_id", None)
        if configured:
            return str(configured)
    return pipeline.group(stage)


def _stages(settings: Settings, pipeline: Pipeline) -> list[StageSpec]:
    return [
        StageSpec(
            s.name,
            None if s.group is None else stage_group(settings, pipeline, s.name),
            s.reads,
            s.writes,
        )
        for s in STAGES
    ]


def _topics(pipeline: Pipeline) -> dict[str, str]:
    """Kind -> topic name of the topics the page shows (all but ``scores``)."""
    topics: dict[str, str] = pipeline.topics.to_dict()
    del topics["scores"]
    return topics


@dataclass
class PipelineView:
    """One pipeline on the page.

    Attributes:
        pipeline: the pipeline (its latest registered version).
        state: rates, lag, anomalies and models, fed by the collector.
        twin: the pipeline's twin, read-only.
        model: the registry name the page follows and trains.
    """

    pipeline: Pipeline
    state: DashboardState
    twin: TwinReader
    model: str

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.pipeline.name

    def layout(self) -> dict[str, Any]:
        """What the page builds itself from: roles, features, charts, topics, groups."""
        schema = self.pipeline.schema
        return {
            "pipeline": self.name,
            "registered": not self.pipeline.is_builtin,
            "version": self.pipeline.version,
            "model": self.model,
            "entity": entity_noun(schema),
            **schema.roles_json(),
            "features": schema.features_json(),
            "charts": chart_groups(schema),
            "topics": dict(self.state.topics),
            "groups": {s.name: s.group for s in self.state.stages if s.group is not None},
            "twin": self.twin.describe(),
        }


class PipelineViews:
    """The pipelines the dashboard knows, by name (thread-safe).

    Args:
        settings: connections, data folder, the dashboard's settings, the opening pipeline.
        pipelines: the first pipelines to show; the first one is the page's default.
    """

    def __init__(self, settings: Settings, pipelines: Iterable[Pipeline]) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._views: dict[str, PipelineView] = {}
        listed = list(pipelines)
        if not listed:
            raise ValueError("a dashboard needs at least one pipeline")
        self.default = listed[0].name
        self.update(listed)

    def _new(self, pipeline: Pipeline) -> PipelineView:
        config = self.settings.dashboard
        state = DashboardState(
            _stages(self.settings, pipeline),
            _topics(pipeline),
            rate_window=config.rate_window,
            max_anomalies=config.max_anomalies,
        )
        url = config.twin_url or self.settings.twin.database_url(
            self.settings.data_dir, pipeline.name
        )
        twin = TwinReader(url, pipeline.schema, pipeline.name, max_entities=config.max_entities)
        model = config.model if config.model and pipeline.name == self.default else pipeline.model
        return PipelineView(pipeline, state, twin, model)

    def update(self, pipelines: Iterable[Pipeline]) -> list[str]:
        """Add new pipelines; a known one keeps its state and takes its latest version.

        Returns:
            The names of the pipelines that were new.
        """
        added = []
        with self._lock:
            for pipeline in pipelines:
                view = self._views.get(pipeline.name)
                if view is None:
                    self._views[pipeline.name] = self._new(pipeline)
                    added.append(pipeline.name)
                elif pipeline.version != view.pipeline.version:
                    view.pipeline = pipeline
                    view.twin.schema = pipeline.schema
        return added

    def get(self, name: str | None = None) -> PipelineView | None:
        """The view of pipeline ``name`` (default: the opening pipeline), or ``None``."""
        with self._lock:
            return self._views.get(name or self.default)

    def all(self) -> list[PipelineView]:
        """Every view, the opening pipeline first, then by name."""
        with self._lock:
            return sorted(self._views.values(), key=lambda v: (v.name != self.default, v.name))

    def close(self) -> None:
        """Close every twin connection."""
        for view in self.all():
            view.twin.close()
