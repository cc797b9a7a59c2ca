"""``lakeless models ...``: list, show, promote and export registered models.

Models are named ``NAME[:VERSION]``; VERSION is a number, ``live`` or ``latest``, and without it
the live version is meant (the latest when none is live).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakeless._cli import settings_command

if TYPE_CHECKING:
    from lakeless.config import Settings
    from lakeless.registry import ModelSummary, Registry

models_app = typer.Typer(
    help="The model registry on Kafka: list, show, promote and export models.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
Ref = Annotated[str, typer.Argument(metavar="NAME[:VERSION]", help="Model and version.")]
#: The registry's options (--artifact-dir, --timeout, ...) from `RegistrySettings`.
registry_command = settings_command("registry", pipeline=False)


def _registry(settings: Settings) -> Registry:
    from lakeless.registry import Registry

    return Registry(settings)


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """Split ``NAME[:VERSION]`` into the name and a version for `lakeless.registry.Registry.get`.

    Example:
        >>> parse_ref("car-ae:3"), parse_ref("car-ae"), parse_ref("car-ae:live")
        (('car-ae', 3), ('car-ae', None), ('car-ae', 'live'))
    """
    name, _, version = ref.partition(":")
    if not version:
        return name, None
    if version.isdigit():
        return name, int(version)
    if version in ("live", "latest"):
        return name, version
    raise typer.BadParameter(f"{ref!r}: VERSION must be a number, 'live' or 'latest'")


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:,.1f} MiB"


def _metrics_text(metrics: dict[str, Any], limit: int = 3) -> str:
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, int | float)]
    return ", ".join(f"{k}={v:.4g}" for k, v in scalars[:limit])


@models_app.command("list")
@registry_command
def list_models(
    settings: Settings,
    name: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: AsJson = False,
) -> None:
    """List registered model versions: stage, pipeline, when, threshold (more: models show)."""
    import msgspec
    from rich import box
    from rich.console import Console
    from rich.table import Table

    with _registry(settings) as registry:
        summaries = registry.list(name)
    if as_json:
        typer.echo(msgspec.json.encode(summaries).decode())
        return
    # Fits 80 columns: the long fields (sha256, metrics, lineage) are in `models show`.
    table = Table("model", "stage", "pipeline", "created (UTC)", "threshold", box=box.SIMPLE)
    styles = {"live": "bold green", "archived": "dim"}
    for s in summaries:
        table.add_row(
            s.ref,
            s.stage,
            s.pipeline,
            _when(s.created_at)[:16],
            f"{s.threshold:.4g}",
            style=styles.get(s.stage),
        )
    Console().print(table if summaries else "no models registered")


@models_app.command()
@registry_command
def show(settings: Settings, ref: Ref, as_json: AsJson = False) -> None:
    """Show one model version: metadata, lineage, metrics, frameworks (never the ONNX bytes)."""
    from lakeless.registry._registry import describe

    name, version = parse_ref(ref)
    with _registry(settings) as registry:
        state = registry.state()
        number = state.resolve(name, version)
        summary = state.summary(name, number)
        text = describe(summary, registry.topic, state.offsets[(name, number)])
    if as_json:
        typer.echo(text.decode(), nl=False)
        return
    _print_summary(summary, json.loads(text))


def _print_summary(summary: ModelSummary, data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{summary.ref}[/] [{'green' if summary.stage == 'live' else 'yellow'}]"
        f"{summary.stage}[/]  created {_when(summary.created_at)} UTC"
    )
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("sha256", summary.sha256)
    table.add_row("size", f"{summary.size:,} bytes" + (f" at {summary.uri}" if summary.uri else ""))
    table.add_row("threshold", f"{summary.threshold:.6g}")
    table.add_row(
        "features",
        f"{len(summary.features)} (pipeline {summary.pipeline}, schema "
        f"{summary.schema_fingerprint or f'v{summary.schema_version}'})",
    )
    record = data["record"]
    table.add_row("record", f"{record['topic']}[{record['partition']}]@{record['offset']}")
    if summary.metrics:
        table.add_row("key metrics", _metrics_text(summary.metrics))
    if summary.description:
        table.add_row("description", summary.description)
    for key in ("metrics", "lineage", "frameworks", "params", "normalization"):
        value = data.get(key)
        if value:
            table.add_row(key, json.dumps(value))
    console.print(table)


@models_app.command()
@registry_command
def promote(
    settings: Settings,
    ref: Annotated[str, typer.Argument(metavar="NAME:VERSION", help="The version to make live.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even if the model fails validation (scorers will still refuse it).",
        ),
    ] = False,
) -> None:
    """Make a version live; scorers swap to it between batches; the old live one is archived.

    Promoting an older version rolls back. The model is validated first (checksum, features,
    schema version, ONNX contract) unless --force.
    """
    from rich.console import Console

    name, version = parse_ref(ref)
    if version is None:
        raise typer.BadParameter("give the version to promote: NAME:VERSION")
    with _registry(settings) as registry:
        change = registry.promote(name, version, check=not force)
    Console().print(f"[bold]{name}:{change.version}[/] is live")


@models_app.command()
@registry_command
def export(
    settings: Settings,
    ref: Ref,
    path: Annotated[
        Path,
        typer.Argument(help="The .onnx file to write, or a folder; a .json sidecar goes beside."),
    ],
) -> None:
    """Write a model's ONNX file (checksum verified) and its metadata as JSON beside it."""
    from rich.console import Console

    name, version = parse_ref(ref)
    with _registry(settings) as registry:
        onnx_path, sidecar = registry.export(name, version, path)
    Console().print(f"wrote {onnx_path} and {sidecar}")
