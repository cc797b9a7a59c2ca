"""Schema evolution: may a new version of a pipeline's schema replace the current one?

Avro's resolution rules, with the new schema as the reader of records every earlier version
wrote (``docs/data-contract.md`` §1), plus what lakeless needs to keep scoring:

- a field the new version adds needs a default (old records have no value for it);
- a field keeps its type, or is promoted (int -> long -> float -> double, enum -> string);
  a nullable field cannot become required;
- key, time and sequence stay the same fields; a version with the same fingerprint as an
  earlier one (only docs, units or ranges changed) keeps every role;
- a field that a live model uses as a feature cannot be removed or stop being a feature.

Example:
    >>> from lakeless.examples import car_fleet
    >>> old = car_fleet()
    >>> raw = dict(old.raw)
    >>> raw["fields"] = [*raw["fields"], {"name": "humidity", "type": "double", "default": 0.5}]
    >>> check_evolution([old], load_schema(raw))  # adding a field with a default is fine
    >>> raw["fields"] = [f for f in old.raw["fields"] if f["name"] != "speed"]
    >>> check_evolution([old], load_schema(raw), {"car-autoencoder:1": old.feature_names})
    Traceback (most recent call last):
    ...
    lakeless.schema._model.SchemaError: the live model car-autoencoder:1 uses feature 'speed', \
which this version removes or stops treating as a feature
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lakeless.schema._model import (  # load_schema: for the doctest
    FieldSpec,
    PipelineSchema,
    SchemaError,
    load_schema,  # noqa: F401
)

__all__ = ["check_evolution"]

#: What a writer's type may be read as (Avro's promotions).
_READABLE_AS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "boolean": {"boolean"},
    "string": {"string"},
    "enum": {"enum", "string"},
}


def check_evolution(
    previous: Sequence[PipelineSchema],
    new: PipelineSchema,
    live_features: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Raise `SchemaError` unless ``new`` may follow the ``previous`` versions.

    Args:
        previous: every registered version, oldest first.
        new: the proposed version.
        live_features: live model reference (``name:version``) -> its input features.
    """
    for old in previous:
        _check_pair(old, new)
    features = set(new.feature_names)
    for ref, used in (live_features or {}).items():
        for name in used:
            if name not in features:
                raise SchemaError(
                    f"the live model {ref} uses feature {name!r}, which this version removes or "
                    "stops treating as a feature"
                )


def _check_pair(old: PipelineSchema, new: PipelineSchema) -> None:
    for role in ("key", "time", "sequence"):
        if getattr(old, role) != getattr(new, role):
            raise SchemaError(
                f"the {role} field changes from {getattr(old, role)!r} to {getattr(new, role)!r}; "
                "entity, time and sequence identify readings and cannot change (create a new "
                "pipeline instead)"
            )
    if old.fingerprint == new.fingerprint and old.roles_json() != new.roles_json():
        raise SchemaError(
            "the fields are unchanged but their roles differ (label or context): records of "
            "both versions would carry the same fingerprint with different layouts; add or "
            "rename a field so that the versions can be told apart, or create a new pipeline"
        )
    for spec in new.fields:
        if spec.name not in old:
            if not spec.has_default:
                raise SchemaError(
                    f"field {spec.name!r} is new and has no default, so records written with "
                    f"the earlier version (fingerprint {old.fingerprint_hex}) cannot be read: "
                    'give it a "default"'
                )
            continue
        _check_type(old.field(spec.name), spec)


def _check_type(old: FieldSpec, new: FieldSpec) -> None:
    if new.type not in _READABLE_AS[old.type]:
        raise SchemaError(
            f"field {new.name!r} changes type from {old.type} to {new.type}, which Avro cannot "
            "promote (allowed: int -> long -> float -> double, enum -> string)"
        )
    if old.nullable and not new.nullable:
        raise SchemaError(f"field {new.name!r} was nullable and becomes required")
    if old.type == "enum" and new.type == "enum":
        missing = sorted(set(old.symbols or ()) - set(new.symbols or ()))
        if missing:
            raise SchemaError(f"enum field {new.name!r} drops symbols {missing}")
