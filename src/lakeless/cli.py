"""The ``lakeless`` command line: one subcommand per pipeline stage.

Each stage keeps its own commands in ``lakeless/<stage>/cli.py``; this module only assembles them
and configures logging (the library itself never does).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from lakeless.errors import ConfigError, LakelessError

app = typer.Typer(
    name="lakeless",
    help="Streaming machine learning on Apache Kafka, without a data lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: it wraps long option texts (environment variable names) instead of
    # truncating them at 80 columns.
    rich_markup_mode=None,
)


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option(envvar="LAKELESS_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
) -> None:
    logging.basicConfig(
        level=log_level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


def _register() -> None:
    # Stage modules import their heavy dependencies inside the commands, so this stays cheap.
    from lakeless.bench.cli import bench_app
    from lakeless.bridge.cli import bridge
    from lakeless.dashboard.cli import dashboard
    from lakeless.demo.cli import demo
    from lakeless.fleet.cli import simulate
    from lakeless.importer.cli import import_command
    from lakeless.pipeline.cli import pipeline_app
    from lakeless.preprocess.cli import preprocess
    from lakeless.registry.cli import models_app
    from lakeless.score.cli import score
    from lakeless.serve.cli import serve
    from lakeless.stack.cli import stack_app, topics_app
    from lakeless.train.cli import train
    from lakeless.twin.cli import twin

    app.command("bridge")(bridge)
    app.command("dashboard")(dashboard)
    app.command("demo")(demo)
    app.command("preprocess")(preprocess)
    app.command("score")(score)
    app.command("serve")(serve)
    app.command("import")(import_command)
    app.command("simulate")(simulate)
    app.command("twin")(twin)
    app.command("train")(train)

    app.add_typer(bench_app, name="bench")
    app.add_typer(models_app, name="models")
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(stack_app, name="stack")
    app.add_typer(topics_app, name="topics")


_register()


def main() -> None:
    """Entry point: run the app, turning `LakelessError` into a one-line message.

    Exit 2 for a `ConfigError` (a bad option or variable, as click's own usage errors), else 1.
    """
    try:
        app()
    except LakelessError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
