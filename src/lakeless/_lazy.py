"""Lazy package attributes (PEP 562), so that importing a stage's package stays cheap.

`lakeless.config` nests every stage's settings model, so it imports each stage package; a
package's ``__init__`` therefore imports its settings eagerly and everything heavy (Kafka
clients, ONNX Runtime, FastAPI) only when one of its names is first used.

Example:
    >>> getattr_ = lazy_attributes("lakeless", {".errors": ["LakelessError"]})
    >>> getattr_("LakelessError").__name__
    'LakelessError'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, modules: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: module (relative) -> the names it provides."""
    names = {name: module for module, provided in modules.items() for name in provided}

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
