"""Offline validation of deploy/k8s: JSON schemas for kubeconform, strict, and the run itself.

``schemas``: turns Strimzi's CRDs (generated from ``io.strimzi:api`` by its crd-generator) and
Kubernetes' own schemas (the ``kubernetes-validate`` wheel from PyPI ships them for every
release, built from the API server's OpenAPI v3 documents) into one folder of JSON schemas named
as kubeconform looks them up (``{kind}-{group}-{version}.json``, e.g. ``kafka-kafka-v1.json``,
``deployment-apps-v1.json``, ``service-v1.json``), with ``additionalProperties: false`` on every
object that lists its properties, so an unknown or misspelled field fails validation (kubeconform
accepts unknown fields otherwise, even with ``-strict``). A custom resource's ``metadata`` gets
Kubernetes' ObjectMeta schema (a CRD leaves it open).

``validate``: runs kubeconform over manifests with those schemas; a kind without a schema fails.

Usage::

    python k8s_check.py schemas --crds DIR --kubernetes-wheel WHEEL \
        --kubernetes-version v1.37.0 --out DIR
    python k8s_check.py validate --kubeconform BIN --schemas DIR FILE_OR_DIR...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

#: Where a CRD schema's metadata points (Kubernetes' ObjectMeta, from _definitions.json).
OBJECT_META = "_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
#: kubeconform's name for a schema: lower-case kind, the group's first label, the version.
SCHEMA_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
_COMBINATORS = ("oneOf", "anyOf", "allOf", "not")


def close_objects(node: Any, *, in_combinator: bool = False) -> int:
    """Add ``additionalProperties: false`` to every object schema that lists its properties.

    Left open: schemas that say otherwise (``additionalProperties`` or
    ``x-kubernetes-preserve-unknown-fields``) and the branches of ``oneOf``/``anyOf``/``allOf``/
    ``not``, which list only the properties they constrain (closing one would reject the rest).

    Returns:
        how many schemas were closed.

    Example:
        >>> branch = {"properties": {"a": {}}, "required": ["a"]}
        >>> schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {}}},
        ...           "oneOf": [branch]}
        >>> close_objects(schema), schema["additionalProperties"], "additionalProperties" in branch
        (2, False, False)
    """
    closed = 0
    if isinstance(node, list):
        return sum(close_objects(item, in_combinator=in_combinator) for item in node)
    if not isinstance(node, dict):
        return 0
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if (
        is_object
        and "properties" in node
        and not in_combinator
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
        closed += 1
    for key, value in node.items():
        if key in _COMBINATORS:
            closed += close_objects(value, in_combinator=True)
        elif key == "properties" and isinstance(value, dict):
            closed += sum(close_objects(v) for v in value.values())
        elif key in ("items", "additionalProperties", "$defs", "definitions"):
            children = value.values() if key in ("$defs", "definitions") else [value]
            closed += sum(close_objects(v) for v in children)
    return closed


def crd_schemas(crd_dir: Path) -> dict[str, dict[str, Any]]:
    """``file name -> schema`` for every served version of every CRD (JSON files) in ``crd_dir``."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(crd_dir.glob("*.json")):
        crd = json.loads(path.read_text())
        if crd.get("kind") == "CustomResourceDefinition":
            spec = crd["spec"]
            kind, group = spec["names"]["kind"], spec["group"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = version["schema"]["openAPIV3Schema"]
                props = schema.setdefault("properties", {})
                props["metadata"] = {"$ref": OBJECT_META}
                props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
                props["kind"] = {"type": "string", "enum": [kind]}
                name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
                out[name] = schema
    return out


def kubernetes_schemas(wheel: Path, version: str) -> dict[str, dict[str, Any]]:
    """``file name -> schema`` of Kubernetes ``version`` from the kubernetes-validate wheel.

    The wheel's schemas refer to ``/api/_definitions.json`` under an ``$id`` on kubernetes.io;
    the ``$id`` goes and the reference becomes relative, so it resolves to the file beside them.
    """
    prefix = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
    out: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            raise SystemExit(f"{wheel} has no schemas for Kubernetes {version}")
        for name in names:
            text = archive.read(name).decode()
            text = text.replace('"/api/_definitions.json#', '"_definitions.json#')
            schema = json.loads(text)
            schema.pop("$id", None)
            out[name.removeprefix(prefix)] = schema
    return out


def write_schemas(crds: Path, wheel: Path, version: str, out: Path) -> None:
    """Write Kubernetes' and the CRDs' schemas, closed, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    schemas = kubernetes_schemas(wheel, version)
    custom = crd_schemas(crds)
    if not custom:
        raise SystemExit(f"no CustomResourceDefinition in {crds}")
    schemas |= custom
    closed = 0
    for name, schema in schemas.items():
        closed += close_objects(schema)
        (out / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(
        f"{len(schemas)} schemas in {out} ({len(custom)} Strimzi: {', '.join(sorted(custom))}); "
        f"additionalProperties: false added to {closed} objects"
    )


def manifests(paths: list[Path]) -> list[Path]:
    """The YAML files among ``paths`` (folders searched recursively, this tool's folder skipped)."""
    here = Path(__file__).resolve().parent
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml") and here not in p.resolve().parents
            )
        else:
            found.append(path)
    return found


def validate(kubeconform: Path, schemas: Path, paths: list[Path]) -> int:
    """Run kubeconform over the manifests in ``paths``; its exit code (1 when there are none)."""
    files = manifests(paths)
    if not files:
        print("no manifests to validate", file=sys.stderr)
        return 1
    argv = [
        str(kubeconform),
        "-strict",  # duplicate keys fail too
        "-summary",
        "-output",
        "text",
        "-schema-location",
        f"{schemas.resolve()}/{SCHEMA_TEMPLATE}",
        *map(str, files),
    ]
    return subprocess.run(argv, check=False).returncode


def main() -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("schemas", help="write the JSON schemas")
    make.add_argument("--crds", type=Path, required=True, help="folder of Strimzi CRDs (JSON)")
    make.add_argument("--kubernetes-wheel", type=Path, required=True)
    make.add_argument("--kubernetes-version", default="v1.37.0")
    make.add_argument("--out", type=Path, required=True)
    check = commands.add_parser("validate", help="run kubeconform over manifests")
    check.add_argument("--kubeconform", type=Path, required=True)
    check.add_argument("--schemas", type=Path, required=True)
    check.add_argument("paths", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "schemas":
        write_schemas(args.crds, args.kubernetes_wheel, args.kubernetes_version, args.out)
        return 0
    return validate(args.kubeconform, args.schemas, args.paths)


if __name__ == "__main__":
    sys.exit(main())
