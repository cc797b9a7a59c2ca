"""lakeless: streaming machine learning on Apache Kafka, without a data lake.

Kept tiny on purpose: ``import lakeless`` must stay cheap. Stages live in subpackages
(``lakeless.stack``, ``lakeless.fleet``, ...) and are imported where used.
"""

from lakeless.errors import LakelessError

__all__ = ["LakelessError", "__version__"]

__version__ = "0.1.0"
