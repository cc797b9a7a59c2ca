"""``lakeless dashboard``: serve the live web page of the pipeline."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console


def _env(name: str) -> str:
    return f"LAKELESS_DASHBOARD__{name}"


def dashboard(
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(envvar=_env("PORT"), min=0, max=65535, help="TCP port.")
    ] = 8080,
    twin_db: Annotated[
        str | None,
        typer.Option(
            envvar=[_env("TWIN_URL"), "LAKELESS_TWIN__URL"],
            help="The twin's database: sqlite:///path (default: sqlite:///<data_dir>/"
            "twin.sqlite) or postgresql://user:password@host:port/db.",
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            envvar=_env("MODEL"),
            help="Registry name of the model to follow and to train with the button.",
        ),
    ] = "car-autoencoder",
    preprocess_group: Annotated[
        str, typer.Option(envvar=_env("PREPROCESS_GROUP"), help="Preprocess consumer group.")
    ] = "lakeless-preprocess",
    score_group: Annotated[
        str, typer.Option(envvar=_env("SCORE_GROUP"), help="Score consumer group.")
    ] = "lakeless-score",
    twin_group: Annotated[
        str, typer.Option(envvar=_env("TWIN_GROUP"), help="Twin consumer group.")
    ] = "lakeless-twin",
    interval: Annotated[
        float,
        typer.Option(
            envvar=_env("INTERVAL"),
            min=0.1,
            max=60,
            help="Seconds between two readings of the offsets (and two page updates).",
        ),
    ] = 1.0,
    train_minutes: Annotated[
        float,
        typer.Option(
            envvar=_env("TRAIN_MINUTES"), min=0.1, help="Training window the page proposes."
        ),
    ] = 10.0,
    train_epochs: Annotated[
        int | None,
        typer.Option(
            envvar=_env("TRAIN_EPOCHS"),
            min=1,
            help="Epochs of a training run started from the page [lakeless train's default].",
        ),
    ] = None,
    no_train: Annotated[
        bool,
        typer.Option(
            "--no-train", envvar=_env("NO_TRAIN"), help="Hide the train button (read-only page)."
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(envvar=_env("TIMEOUT"), help="Stop after S seconds (default: until SIGTERM)."),
    ] = None,
) -> None:
    """Serve the live dashboard: events/s and lag per stage, anomalies, cars, models, training.

    One page, no internet needed: open http://HOST:PORT/ in a browser. JSON under /api
    (/api/stats, /api/anomalies, /api/cars, /api/cars/{car_id}, /api/models, POST /api/train)
    and a server-sent event stream at /events. Stops on SIGTERM/SIGINT or after --timeout.
    """
    from lakeless.config import load_settings
    from lakeless.dashboard import DashboardSettings, run_dashboard
    from lakeless.lifecycle import RunLimits

    settings = load_settings()
    config = DashboardSettings(
        host=host,
        port=port,
        twin_url=twin_db or None,
        model=model,
        preprocess_group=preprocess_group,
        score_group=score_group,
        twin_group=twin_group,
        interval=interval,
        train_enabled=not no_train,
        train_minutes=train_minutes,
        train_epochs=train_epochs,
    )
    console = Console(stderr=True)
    console.print(
        f"dashboard: http://{host}:{port}/ (Kafka {settings.kafka.bootstrap_servers}, "
        f"twin {config.twin_url or 'sqlite:///' + str(settings.data_dir / 'twin.sqlite')})"
    )
    reason = run_dashboard(settings, config, RunLimits(timeout=timeout))
    console.print(f"dashboard: stopped ({reason})")
