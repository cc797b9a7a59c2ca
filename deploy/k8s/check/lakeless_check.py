"""The lakeless containers of deploy/k8s against the real CLI and settings model, offline.

Kubernetes' schemas know nothing of lakeless: ``--metrics-prot`` in ``args`` or
``LAKELESS_KAFKA_SASL_PASSWORD`` (one ``_`` short) in ``env`` pass kubeconform, and then fail
in the pod, or are silently ignored. For every container whose ``command`` starts with
``lakeless`` this check

- resolves ``command`` + ``args`` on lakeless' Click app (the one ``lakeless`` runs) and
  parses them with Click's own parser, so an unknown subcommand or option, a missing value, a
  bad choice or number fails as it would on the command line;
- takes every ``LAKELESS_*`` name in its ``env`` and in the ConfigMaps it loads with
  ``envFrom`` (found among the checked files) and accepts only what lakeless reads: the
  variables of `lakeless.config.Settings` (``LAKELESS_SECTION__FIELD``, any key below a
  free-form map such as ``LAKELESS_KAFKA__EXTRA__``), the ``envvar`` of every option on the
  command's path (``LAKELESS_LOG_LEVEL``, ``LAKELESS_STACK_*`` for ``stack``), and
  ``LAKELESS_ENV_FILE``;
- loads the literal values (a value from a Secret or the downward API counts as set) into
  `Settings`, so a value the model refuses fails too.

It imports lakeless (run it with the project's Python). Usage::

    python lakeless_check.py FILE_OR_DIR...
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: What stands for a value Kubernetes fills in at run time (a Secret, the downward API).
FROM_CLUSTER = "set-by-the-cluster"
#: Read by `lakeless.config.load_settings` itself, not by the model.
EXTRA_NAMES = frozenset({"LAKELESS_ENV_FILE"})


@dataclass
class Container:
    """One lakeless container of a manifest, with the variables it gets."""

    where: str
    name: str
    argv: list[str]
    #: name -> value (`FROM_CLUSTER` for valueFrom) and where it was set.
    env: dict[str, tuple[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def documents(paths: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every YAML document of the ``*.yaml`` files among ``paths`` (folders recursively)."""
    here = Path(__file__).resolve().parent
    for path in paths:
        files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        for file in files:
            if here in file.resolve().parents:
                continue
            for doc in yaml.load_all(file.read_text(), Loader=_LOADER):
                if isinstance(doc, dict):
                    yield file, doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload (Deployment, StatefulSet, Job, CronJob, Pod, ...)."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return spec
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) else None


def containers(paths: list[Path]) -> list[Container]:
    """The lakeless containers in ``paths``, their variables gathered (env, envFrom)."""
    docs = list(documents(paths))
    config_maps = {
        (d.get("metadata") or {}).get("name"): d.get("data") or {}
        for _, d in docs
        if d.get("kind") == "ConfigMap"
    }
    found = []
    for file, doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for item in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            argv = [*item.get("command", []), *item.get("args", [])]
            image = str(item.get("image", ""))
            if not argv or argv[0] != "lakeless":
                if "lakeless/lakeless" in image:
                    where = f"{file.name}: {doc['kind']}/{doc['metadata']['name']}"
                    found.append(Container(where, item["name"], argv))
                    found[-1].errors.append("runs the lakeless image without `lakeless ...`")
                continue
            where = f"{file.name}: {doc['kind']}/{doc['metadata']['name']} {item['name']}"
            container = Container(where, item["name"], [str(a) for a in argv])
            for source in item.get("envFrom", []):
                prefix = source.get("prefix", "")
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    if name not in config_maps:
                        container.errors.append(f"envFrom: no ConfigMap {name!r} in the files")
                    for key, value in config_maps.get(name, {}).items():
                        container.env[prefix + key] = (str(value), f"ConfigMap {name}")
                else:
                    container.errors.append(
                        "envFrom a Secret: its keys cannot be checked offline (use env with "
                        "secretKeyRef)"
                    )
            for var in item.get("env", []):
                value = str(var["value"]) if "value" in var else FROM_CLUSTER
                container.env[var["name"]] = (value, "env")
            found.append(container)
    return found


def _model(annotation: Any) -> Any:
    """The pydantic model class in ``annotation`` (``Model``, ``Model | None``), else ``None``."""
    from pydantic import BaseModel

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_map(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_map(a) for a in typing.get_args(annotation))
    return annotation is dict or typing.get_origin(annotation) is dict


def settings_names() -> tuple[set[str], set[str]]:
    """``(names, open prefixes)``: every variable of `Settings`, and the free-form maps'."""
    from lakeless.config import Settings

    names: set[str] = set()
    prefixes: set[str] = set()

    def walk(model: Any, prefix: str) -> None:
        for name, info in model.model_fields.items():
            env = prefix + name.upper()
            names.add(env)
            if (sub := _model(info.annotation)) is not None:
                walk(sub, env + "__")
            elif _is_map(info.annotation):
                prefixes.add(env + "__")

    walk(Settings, "LAKELESS_")
    return names, prefixes


def _option_envvars(command: Any) -> set[str]:
    out: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        out.update([envvar] if isinstance(envvar, str) else envvar or [])
    return out


def click_error() -> type[Exception]:
    """The error class of the Click that typer runs on (typer 0.29+ vendors its own copy)."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # older typer: Click itself
        from click import ClickException  # type: ignore[assignment]
    return ClickException


class CommandError(Exception):
    """A ``lakeless ...`` that the CLI would refuse."""


@functools.cache
def cli() -> Any:
    """The Click command of lakeless (typer builds it anew on every call: slow)."""
    import typer

    from lakeless.cli import app

    return typer.main.get_command(app)


def resolve(argv: list[str]) -> tuple[list[str], set[str]]:
    """Parse ``argv`` (``lakeless ...``) as lakeless would; the command path and its envvars.

    Raises:
        CommandError: an unknown command or option, a missing or invalid value.
    """
    command: Any = cli()
    path, envvars = ["lakeless"], _option_envvars(command)
    try:
        ctx = command.make_context("lakeless", argv[1:])
        while hasattr(command, "resolve_command"):  # a group: the next word is a subcommand
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                raise CommandError(f"`{' '.join(path)}` needs a subcommand")
            name, command, rest = command.resolve_command(ctx, rest)
            ctx = command.make_context(name, rest, parent=ctx)
            path.append(name)
            envvars |= _option_envvars(command)
    except click_error() as exc:
        raise CommandError(exc.format_message()) from None  # type: ignore[attr-defined]
    return path, envvars


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` without any LAKELESS_* but ``env``'s (restored afterwards)."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.upper().startswith("LAKELESS_")]:
            del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check(paths: list[Path]) -> tuple[list[Container], list[str]]:
    """Check the lakeless containers in ``paths``; return them and the errors found."""
    from pydantic import ValidationError

    from lakeless.config import Settings, describe_errors

    names, prefixes = settings_names()
    found = containers(paths)
    errors = []
    for container in found:
        errors += [f"{container.where}: {e}" for e in container.errors]
        if container.errors:
            continue
        lakeless_env = {k: v for k, (v, _) in container.env.items() if k.startswith("LAKELESS_")}
        with environment(lakeless_env):
            try:
                path, envvars = resolve(container.argv)
            except CommandError as exc:
                errors.append(f"{container.where}: `{' '.join(container.argv)}`: {exc}")
                continue
            for name, (_, source) in sorted(container.env.items()):
                if name.upper().startswith("LAKELESS_") and not (
                    name in names
                    or name in envvars
                    or name in EXTRA_NAMES
                    or any(name.startswith(p) for p in prefixes)
                ):
                    errors.append(
                        f"{container.where}: {name} ({source}) is not a variable of "
                        f"`{' '.join(path)}` (lakeless.config.Settings or its options)"
                    )
            try:
                Settings(_env_file=None)  # type: ignore[call-arg]
            except ValidationError as exc:
                errors.append(f"{container.where}: {describe_errors(exc)}")
    return found, errors


def main() -> int:
    """The command line: check the paths given, print the errors; 1 when there are any."""
    paths = [Path(p) for p in sys.argv[1:]] or [Path("deploy/k8s")]
    found, errors = check(paths)
    for error in errors:
        print(error)
    if not found:
        print("no lakeless containers found", file=sys.stderr)
        return 1
    print(
        f"{len(found)} lakeless containers: {len(errors)} errors in their commands and "
        "LAKELESS_* variables"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
