"""Command-line options derived from the settings models: one place for a default and its help.

`settings_command` turns a function ``f(settings, ...)`` into a typer command with one
``--option`` per field of the named `lakeless.config.Settings` sections. Each option shows its
environment variable (``LAKELESS_<SECTION>__<FIELD>``) and the model's default in ``--help``;
only options given on the command line (or through their variable) override the settings, so
pydantic validates every value and an out-of-range one is one clear line, not a traceback.

Example:
    >>> from lakeless.preprocess import PreprocessSettings
    >>> [o.name for o in options_for("preprocess", PreprocessSettings)][:3]
    ['count', 'timeout', 'until_idle']
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.console import Console

if typing.TYPE_CHECKING:
    from lakeless._options import RunOptions


class _Reports(typing.Protocol):
    def to_dict(self) -> dict[str, Any]: ...


__all__ = [
    "CliOption",
    "configure_logging",
    "console",
    "options_for",
    "report",
    "settings_command",
]

_SCALARS = (int, float, str, bool, Path)

#: Where commands print what a human reads (stdout stays for ``--json`` output).
console = Console(stderr=True)


@contextlib.contextmanager
def report(options: RunOptions, stats: Callable[[], _Reports]) -> Iterator[None]:
    """Write ``stats()`` to ``options.stats_json`` when the block exits, however it exits.

    A failed run's counts cover the committed batches only, i.e. what a restart will not
    process again.
    """
    try:
        yield
    finally:
        if options.stats_json is not None:
            data = stats().to_dict()
            data["stopped_by"] = data.get("stopped_by") or "error"
            options.stats_json.write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class CliOption:
    """One generated option.

    Attributes:
        section: the settings section (``preprocess``).
        name: the field name (``batch_size``).
        flag: the option (``--batch-size``).
        envvar: ``LAKELESS_PREPROCESS__BATCH_SIZE``.
        annotation: the parameter type typer sees.
        info: the typer option.
    """

    section: str
    name: str
    flag: str
    envvar: str
    annotation: Any
    info: Any

    @property
    def param(self) -> str:
        """The parameter name of the generated function."""
        return f"{self.section}__{self.name}"


def _scalar(annotation: Any) -> tuple[Any, list[str] | None, bool] | None:
    """``(type, choices, optional)`` of a CLI-able annotation, else ``None``."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) != len(typing.get_args(annotation))
        if len(members) != 1:
            return None
        annotation = members[0]
        origin = typing.get_origin(annotation)
    if origin is Literal:
        return str, [str(a) for a in typing.get_args(annotation)], optional
    if origin in (tuple, dict):
        return str, None, optional  # comma-separated; the model's validator splits it
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str, [str(m.value) for m in annotation], optional
    if annotation in _SCALARS:
        return annotation, None, optional
    return None


def _default_text(info: FieldInfo) -> str:
    default = info.default
    if default is PydanticUndefined:
        default = info.default_factory() if info.default_factory else None  # type: ignore[call-arg]
    if default is None:
        return ""
    if isinstance(default, bool):
        return " [default: on]" if default else " [default: off]"
    if isinstance(default, tuple):
        default = ",".join(str(v) for v in default)
    if isinstance(default, dict):
        if not default:
            return ""
        default = ",".join(f"{k}={v}" for k, v in default.items())
    return f" [default: {default}]"


def _parses_text(model: type[BaseModel], name: str) -> bool:
    """Whether a ``before`` validator of ``model`` turns text into the field's type."""
    decorators = model.__pydantic_decorators__.field_validators.values()
    return any(
        d.info.mode in ("before", "plain", "wrap")
        and (name in d.info.fields or "*" in d.info.fields)
        for d in decorators
    )


def options_for(
    section: str,
    model: type[BaseModel],
    *,
    exclude: Sequence[str] = (),
    rename: dict[str, str] | None = None,
) -> list[CliOption]:
    """The options of one settings section (fields that are not CLI-able are left out)."""
    out = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        scalar = _scalar(info.annotation)
        if scalar is None:
            continue
        kind: Any = scalar[0]
        if kind is not bool and _parses_text(model, name):
            kind = str  # e.g. a time given as "-30m": the settings model converts it
        choices = scalar[1]
        flag = "--" + (rename or {}).get(name, name).replace("_", "-")
        envvar = f"LAKELESS_{section.upper()}__{name.upper()}"
        # The default and the variable go in the text: the option's own default is None
        # ("not given"), so that only what the user set overrides the settings.
        help_text = f"{info.description or ''}{_default_text(info)} [env: {envvar}]"
        extra: dict[str, Any] = {}
        if choices is not None:  # typer shows and checks an Enum's values
            kind = StrEnum(f"{section}_{name}", {c: c for c in choices})  # type: ignore[misc, no-redef]
        if kind is Path:
            extra["dir_okay"] = False
        flags = (f"{flag}/--no-{flag[2:]}",) if kind is bool else (flag,)
        option = typer.Option(
            *flags, envvar=envvar, show_envvar=False, show_default=False, help=help_text, **extra
        )
        out.append(CliOption(section, name, flag, envvar, kind | None, option))
    return out


def settings_command(
    *sections: str,
    exclude: Sequence[str] = (),
    rename: dict[str, str] | None = None,
    pipeline: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``f(settings, **own)``: a typer command with the options of ``sections``.

    Args:
        sections: `lakeless.config.Settings` fields whose models give options.
        exclude: fields (of any section) without an option.
        rename: field -> option name (without ``--``).
        pipeline: add ``--pipeline`` (``LAKELESS_PIPELINE``).
    """
    from lakeless.config import Settings

    generated: list[CliOption] = []
    for section in sections:
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        generated += options_for(section, model, exclude=exclude, rename=rename)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        # The command's own parameters, their annotations evaluated in its module (they are
        # strings under ``from __future__ import annotations``).
        hints = typing.get_type_hints(function, localns={"Settings": Settings}, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(function).parameters.values()
            if p.name != "settings"
        ]
        taken = {p.name for p in own}
        params = list(own)
        for option in generated:
            if option.name in taken:
                continue  # the command declares it itself
            params.append(
                inspect.Parameter(
                    option.param,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[option.annotation, option.info],
                )
            )
        if pipeline and "pipeline" not in taken:
            params.append(
                inspect.Parameter(
                    "pipeline",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[
                        str | None,
                        typer.Option(
                            envvar="LAKELESS_PIPELINE",
                            show_envvar=False,
                            help="The pipeline to work on [default: car-fleet] "
                            "[env: LAKELESS_PIPELINE]",
                        ),
                    ],
                )
            )

        @functools.wraps(function)
        def command(**kwargs: Any) -> Any:
            from lakeless.config import load_settings

            overrides: dict[str, Any] = {}
            for option in generated:
                value = kwargs.pop(option.param, None)
                if isinstance(value, Enum):
                    value = value.value
                if value is not None:
                    overrides.setdefault(option.section, {})[option.name] = value
            name = kwargs.pop("pipeline", None) if pipeline and "pipeline" not in taken else None
            if name:
                overrides["pipeline"] = name
            settings = load_settings(**overrides)
            for section in sections:
                if getattr(getattr(settings, section), "log_format", "text") == "json":
                    level = logging.getLevelName(logging.getLogger().level)
                    configure_logging(level, "json")
            return function(settings, **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def configure_logging(level: str = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    """Replace the root handlers: rich text, or one JSON object per line, on stderr."""
    from rich.logging import RichHandler

    from lakeless import logs

    if fmt == "json":
        logs.configure_logging(level, "json")
        return
    handler = RichHandler(console=Console(stderr=True), show_path=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logs.install_handler(handler, level)
