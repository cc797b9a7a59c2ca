"""Training data straight from Kafka: a topic window as numpy, pandas, tf.data or PyTorch.

No data lake and no copy to files: a `Window` ("the last 30 minutes", two times, or offsets) is
resolved to exact per-partition offsets (a `ResolvedWindow`, the run's lineage), then every
partition is read in parallel and decoded in vectorized batches. Reading the same resolved window
again, tomorrow or from the recorded lineage, gives byte-identical training inputs; segments that
moved to the remote tier are served by the broker without any change here.

In a notebook::

    from lakeless.dataset import KafkaDataset, Window
    ds = KafkaDataset(window=Window.last("30m"))
    x = ds.features()                    # or ds.to_pandas(), ds.to_tf_dataset(), ds.to_torch()

A bad record inside the window (not a clean record of the pipeline's schema) stops the read
with a `BadRecordError` naming ``topic[partition]@offset`` and carrying the raw bytes: skipping
it would quietly change the training data, and the clean topic is written only by the
preprocessor, so such a record is a bug to look at, not noise.

Example:
    >>> window = Window.between("2024-05-01T08:00Z", "2024-05-01T09:00Z")
    >>> window
    Window.between(1714550400000, 1714554000000)
    >>> Window.last("2h").duration_ms
    7200000
"""

from lakeless.dataset._dataset import KafkaDataset, rebatch
from lakeless.dataset._reader import READ_CONFIG, BadRecordError
from lakeless.dataset._window import (
    DatasetError,
    ResolvedWindow,
    Window,
    parse_duration,
    to_millis,
)

__all__ = [
    "READ_CONFIG",
    "BadRecordError",
    "DatasetError",
    "KafkaDataset",
    "ResolvedWindow",
    "Window",
    "parse_duration",
    "rebatch",
    "to_millis",
]
