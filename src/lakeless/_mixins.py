"""Mixins shared across packages: a dataclass's `to_dict`, a closeable object's ``with``.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Point(AsDict):
    ...     x: int
    ...     y: int
    >>> Point(1, 2).to_dict()
    {'x': 1, 'y': 2}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Self, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["AsDict", "Closing"]


class AsDict:
    """For a dataclass: `to_dict`, its fields by name (nested dataclasses as dicts too)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(cast("DataclassInstance", self))


class Closing(ABC):
    """For an object with a `close` method: ``with obj:`` closes it on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
