"""`RegistrySettings`: ``LAKELESS_REGISTRY__*`` and the options of ``lakeless models``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from pydantic import Field

from lakeless._options import StageOptions

if TYPE_CHECKING:
    from lakeless.config import KafkaSettings

__all__ = ["DEFAULT_MAX_INLINE_BYTES", "RegistrySettings"]

#: Models larger than this travel as a ``file://`` URI into ``artifact_dir``, not inline.
DEFAULT_MAX_INLINE_BYTES: Final = 48 * 1024 * 1024


class RegistrySettings(StageOptions):
    """How the model registry stores models and waits on Kafka (``Registry``'s default).

    Example:
        >>> from lakeless.config import KafkaSettings
        >>> kafka = KafkaSettings(bootstrap_servers="analytics:9092")
        >>> RegistrySettings().kafka(kafka).bootstrap_servers
        'analytics:9092'
        >>> RegistrySettings(bootstrap_servers="primary:9092").kafka(kafka).bootstrap_servers
        'primary:9092'
    """

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers of the model registry when it is on another "
        "cluster than the data (training on an analytics replica registers on the primary, "
        "whose scorers follow it); the same credentials are used. Unset: "
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS.",
    )

    max_inline_bytes: int = Field(
        default=DEFAULT_MAX_INLINE_BYTES,
        ge=1,
        le=60 * 1024 * 1024,
        description="Larger ONNX models go to --artifact-dir and their record carries a "
        "file:// URI instead of the bytes.",
    )
    artifact_dir: Path | None = Field(
        default=None,
        description="Folder of models too large to travel inside their record (a shared "
        "filesystem on several hosts); unset: registering one fails.",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds one read of the log or one acknowledgement may take.",
    )
    register_attempts: int = Field(
        default=5,
        ge=1,
        description="Registrations that lost a version race are retried this often.",
    )

    def kafka(self, data: KafkaSettings) -> KafkaSettings:
        """The client settings of the registry's cluster: ``data`` with `bootstrap_servers`."""
        if self.bootstrap_servers is None:
            return data
        return data.model_copy(update={"bootstrap_servers": self.bootstrap_servers})
