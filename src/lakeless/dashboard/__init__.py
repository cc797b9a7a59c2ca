"""The ``dashboard`` stage: a live web page of the pipelines, served by the project.

``lakeless dashboard`` serves one page (plain HTML, CSS and JavaScript shipped in this package;
nothing comes from the internet) fed by server-sent events: events/s and consumer lag per
stage, a live anomaly feed, the entities from the twin with a drill-down into one entity's
recent readings as charts (one per unit of the schema's features), the model registry
(versions, stages, lineage, metrics, training report images), and a button that trains a new
model on the last N minutes and promotes it. A selector switches between the pipelines (the
built-in car fleet and every registered one); everything on the page follows its schema.

- `KafkaCollector` reads offsets, tails the anomaly topics and folds the registries on one
  thread into each pipeline's `DashboardState`;
- `PipelineViews` holds, per pipeline, that state, a read-only `TwinReader` and the layout;
- `create_app` is the FastAPI app (routes in ``lakeless.dashboard._app``);
- `TrainJobs` runs ``lakeless train`` in a child process for the train button;
- `dashboard_server` / `run_dashboard` serve it (`lakeless._http.HttpServer`).

Example:
    >>> from lakeless.dashboard import DashboardSettings
    >>> DashboardSettings().port
    8080
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.dashboard._settings import DashboardSettings

if TYPE_CHECKING:
    from lakeless.dashboard._app import STATIC_DIR, create_app
    from lakeless.dashboard._collector import KafkaCollector
    from lakeless.dashboard._jobs import JobBusyError, TrainJob, TrainJobs, settings_env
    from lakeless.dashboard._server import dashboard_server, run_dashboard
    from lakeless.dashboard._state import STAGES, DashboardState, GroupOffsets, Sample, StageSpec
    from lakeless.dashboard._twin import TwinReader
    from lakeless.dashboard._views import (
        PipelineView,
        PipelineViews,
        chart_groups,
        entity_noun,
        stage_group,
    )

__all__ = [
    "STAGES",
    "STATIC_DIR",
    "DashboardSettings",
    "DashboardState",
    "GroupOffsets",
    "JobBusyError",
    "KafkaCollector",
    "PipelineView",
    "PipelineViews",
    "Sample",
    "StageSpec",
    "TrainJob",
    "TrainJobs",
    "TwinReader",
    "chart_groups",
    "create_app",
    "dashboard_server",
    "entity_noun",
    "run_dashboard",
    "settings_env",
    "stage_group",
]

# The CLI imports ``lakeless.dashboard.cli`` on every run: the package loads its modules (and
# FastAPI, confluent-kafka, the twin) only when one of its names is used.
__getattr__ = lazy_attributes(
    __name__,
    {
        "._app": ["STATIC_DIR", "create_app"],
        "._collector": ["KafkaCollector"],
        "._jobs": ["JobBusyError", "TrainJob", "TrainJobs", "settings_env"],
        "._server": ["dashboard_server", "run_dashboard"],
        "._state": ["STAGES", "DashboardState", "GroupOffsets", "Sample", "StageSpec"],
        "._twin": ["TwinReader"],
        "._views": ["PipelineView", "PipelineViews", "chart_groups", "entity_noun", "stage_group"],
    },
)
