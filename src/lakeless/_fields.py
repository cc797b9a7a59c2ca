"""Settings fields that several settings models declare alike: one range and one help text each.

Each model keeps its own default (``top_k: TopK = 3``), so ``--help`` and the environment
variables stay per command while what the value means is written once.

Example:
    >>> from pydantic import BaseModel
    >>> class Server(BaseModel):
    ...     port: ListenPort = 8000
    >>> Server.model_fields["port"].description
    'TCP port (0: any free one).'
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["ListenHost", "ListenPort", "OnnxThreads", "RegistryTimeout", "TopK"]

#: The interface an HTTP server listens on (the dashboard, the model server).
ListenHost = Annotated[str, Field(description="Interface to listen on.")]
#: The TCP port an HTTP server listens on.
ListenPort = Annotated[int, Field(ge=0, le=65535, description="TCP port (0: any free one).")]
#: Features named per anomaly (the scorer, the model server).
TopK = Annotated[int, Field(ge=0, le=1000, description="Features named per anomaly.")]
#: ONNX Runtime's intra-op threads of one scorer.
OnnxThreads = Annotated[int, Field(ge=0, le=256, description="ONNX Runtime intra-op threads.")]
#: How long following the model registry may take to catch up, or to load one model.
RegistryTimeout = Annotated[
    float, Field(gt=0, description="Seconds the registry catch-up or one model load may take.")
]
