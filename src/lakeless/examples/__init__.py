"""Example pipelines shipped with lakeless: their schema files (and simulators elsewhere).

``car-fleet`` is the talk's connected-car demo and the default pipeline; ``pumps`` is a second,
differently shaped example (another entity, fewer features, no sequence field).

Example:
    >>> car_fleet().feature_names[:2]
    ('coolant_temp', 'intake_air_temp')
    >>> sorted(EXAMPLES)
    ['car-fleet', 'pumps']
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

from lakeless.schema import PipelineSchema, load_schema

__all__ = ["EXAMPLES", "car_fleet", "example_schema", "schema_path"]

#: Example pipeline name -> schema file inside this package.
EXAMPLES: Final = {"car-fleet": "car-fleet.avsc", "pumps": "pumps.avsc"}


def schema_path(name: str) -> str:
    """The path of an example's schema file.

    Raises:
        KeyError: no such example.
    """
    return str(resources.files(__package__).joinpath(EXAMPLES[name]))


@functools.cache
def example_schema(name: str) -> PipelineSchema:
    """The parsed schema of an example pipeline."""
    return load_schema(schema_path(name))


def car_fleet() -> PipelineSchema:
    """The car fleet's schema: the default pipeline."""
    return example_schema("car-fleet")
