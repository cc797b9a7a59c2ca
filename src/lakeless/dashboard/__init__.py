"""The ``dashboard`` stage: a live web page of the whole pipeline, served by the project.

``lakeless dashboard`` serves one page (plain HTML, CSS and JavaScript shipped in this package;
nothing comes from the internet) fed by server-sent events: events/s and consumer lag per
stage, a live anomaly feed, the fleet from the twin with a drill-down into one car's recent
signals as charts, the model registry (versions, stages, lineage, metrics, training report
images), and a button that trains a new model on the last N minutes and promotes it.

- `KafkaCollector` reads offsets, tails ``anomalies`` and folds the registry on one thread
  into a `DashboardState`;
- `create_app` is the FastAPI app (routes in ``lakeless.dashboard._app``);
- `TrainJobs` runs ``lakeless train`` in a child process for the train button;
- `run_dashboard` / `DashboardServer` serve it in the foreground / on a thread.

Example:
    >>> from lakeless.dashboard import DashboardSettings
    >>> DashboardSettings().stages()[2].group
    'lakeless-score'
"""

# The CLI imports ``lakeless.dashboard.cli`` on every run: the package loads its modules (and
# FastAPI, confluent-kafka, the twin) only when one of its names is used.
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakeless.dashboard._app import STATIC_DIR, DashboardSettings, create_app
    from lakeless.dashboard._collector import KafkaCollector
    from lakeless.dashboard._jobs import JobBusyError, TrainJob, TrainJobs, settings_env
    from lakeless.dashboard._server import DashboardError, DashboardServer, run_dashboard
    from lakeless.dashboard._state import STAGES, DashboardState, GroupOffsets, Sample, StageSpec
    from lakeless.dashboard._twin import TwinReader

__all__ = [
    "STAGES",
    "STATIC_DIR",
    "DashboardError",
    "DashboardServer",
    "DashboardSettings",
    "DashboardState",
    "GroupOffsets",
    "JobBusyError",
    "KafkaCollector",
    "Sample",
    "StageSpec",
    "TrainJob",
    "TrainJobs",
    "TwinReader",
    "create_app",
    "run_dashboard",
    "settings_env",
]

_MODULES = {
    "STATIC_DIR": "_app",
    "DashboardSettings": "_app",
    "create_app": "_app",
    "KafkaCollector": "_collector",
    "JobBusyError": "_jobs",
    "TrainJob": "_jobs",
    "TrainJobs": "_jobs",
    "settings_env": "_jobs",
    "DashboardError": "_server",
    "DashboardServer": "_server",
    "run_dashboard": "_server",
    "STAGES": "_state",
    "DashboardState": "_state",
    "GroupOffsets": "_state",
    "Sample": "_state",
    "StageSpec": "_state",
    "TwinReader": "_twin",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
