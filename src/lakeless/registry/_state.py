"""The registry's state: a fold of the ``lakeless.models`` log, in offset order.

Rules (`RegistryState.apply`):

- a model record adds version ``(name, version)`` with the stage it was registered with; a later
  record with the same ``(name, version)`` is a duplicate (two registrations raced) and ignored:
  the lowest offset wins, and the registry re-registers the loser under the next version;
- a stage change sets the stage of an existing version; one for a version that does not exist
  (yet) is ignored;
- ``live``: the version that most recently became live (registered live, or promoted). Promoting a
  version archives the version that was live before; moving the live version to another stage
  leaves the name without a live version.

Example:
    >>> state = RegistryState()
    >>> state.apply(StageChange(name="m", version=1, stage="live", at=0), offset=0)
    >>> state.live_version("m") is None  # version 1 was never registered
    True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec

from lakeless.registry._errors import ModelNotFoundError
from lakeless.registry._record import ModelSummary, Stage, StageChange

__all__ = ["RegistryState", "VersionRef"]

logger = logging.getLogger(__name__)

#: A version: an ``int``, ``"live"``, ``"latest"``, or ``None`` (live if any, else latest).
VersionRef = int | str | None


@dataclass
class RegistryState:
    """Registered versions and their current stages, folded from the log.

    Args:
        topic: the log's topic, for log lines (``topic[0]@offset``).

    Attributes:
        models: ``(name, version)`` -> the record as registered (its ``stage`` is the
            registration stage; use `stage` or `summaries` for the current one).
        offsets: ``(name, version)`` -> offset of the model record.
        stages: ``(name, version)`` -> current stage.
        live: name -> live version.
        live_history: name -> versions in the order they became live (repeats allowed).
        end: offset after the last record applied.
    """

    topic: str = ""
    models: dict[tuple[str, int], ModelSummary] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    stages: dict[tuple[str, int], Stage] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)
    live_history: dict[str, list[int]] = field(default_factory=dict)
    end: int = 0

    def apply(self, entry: ModelSummary | StageChange, offset: int) -> None:
        """Fold one record at ``offset`` into the state."""
        self.end = max(self.end, offset + 1)
        key = (entry.name, entry.version)
        where = f"{self.topic}[0]@{offset}"
        if isinstance(entry, StageChange):
            if key not in self.models:
                logger.warning(
                    "ignoring stage change of unknown model %s v%d to %s at %s",
                    entry.name,
                    entry.version,
                    entry.stage,
                    where,
                )
                return
            self._set_stage(entry.name, entry.version, entry.stage)
            return
        if key in self.models:
            logger.warning(
                "ignoring duplicate model %s v%d at %s (registered at offset %d)",
                entry.name,
                entry.version,
                where,
                self.offsets[key],
            )
            return
        self.models[key] = entry
        self.offsets[key] = offset
        self.stages[key] = "candidate"
        self._set_stage(entry.name, entry.version, entry.stage)

    def _set_stage(self, name: str, version: int, stage: Stage) -> None:
        current = self.live.get(name)
        if stage == "live":
            if current is not None and current != version:
                self.stages[(name, current)] = "archived"
            self.live[name] = version
            self.live_history.setdefault(name, []).append(version)
        elif current == version:
            del self.live[name]
        self.stages[(name, version)] = stage

    def names(self) -> list[str]:
        """Registered model names, sorted."""
        return sorted({name for name, _ in self.models})

    def versions(self, name: str) -> list[int]:
        """Registered versions of ``name``, ascending."""
        return sorted(version for n, version in self.models if n == name)

    def next_version(self, name: str) -> int:
        """The version a new registration of ``name`` gets: highest so far + 1."""
        return max(self.versions(name), default=0) + 1

    def live_version(self, name: str) -> int | None:
        """The live version of ``name``, if any."""
        return self.live.get(name)

    def stage(self, name: str, version: int) -> Stage:
        """Current stage of a registered version.

        Raises:
            ModelNotFoundError: not registered.
        """
        try:
            return self.stages[(name, version)]
        except KeyError:
            raise ModelNotFoundError(f"model {name} has no version {version}") from None

    def resolve(self, name: str, version: VersionRef = None) -> int:
        """The version number ``version`` means for ``name``.

        Args:
            name: model name.
            version: a number, ``"live"``, ``"latest"``, or ``None`` for the live version if
                there is one, else the latest.

        Raises:
            ModelNotFoundError: no such model or version (or no live version for ``"live"``).
        """
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFoundError(f"no model named {name!r} (registered: {known})")
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if version is None:
            return self.live.get(name, versions[-1])
        if version == "latest":
            return versions[-1]
        if version == "live":
            if name not in self.live:
                raise ModelNotFoundError(f"model {name} has no live version")
            return self.live[name]
        if isinstance(version, int) and version in versions:
            return version
        raise ModelNotFoundError(
            f"model {name} has no version {version!r} (versions {versions[0]}..{versions[-1]})"
        )

    def summary(self, name: str, version: int) -> ModelSummary:
        """The summary of a registered version, with its current stage.

        Raises:
            ModelNotFoundError: not registered.
        """
        stage = self.stage(name, version)
        return msgspec.structs.replace(self.models[(name, version)], stage=stage)

    def summaries(self, name: str | None = None) -> list[ModelSummary]:
        """Every registered version (of ``name`` only, if given), with current stages."""
        keys = sorted(key for key in self.models if name is None or key[0] == name)
        return [self.summary(*key) for key in keys]
