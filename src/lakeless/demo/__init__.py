"""The main job, ``lakeless demo``: the whole pipeline on one machine, end to end.

1. Start Kafka and Mosquitto (`lakeless.stack`), register the pipeline (the car fleet by
   default, or the pumps example: ``--pipeline pumps``) and create its topics.
2. Write a history: ``warmup`` simulated minutes of devices with failures, ending now, straight
   to the raw topic (as if the bridge had forwarded it). The live devices later are the same
   ones going on (same seed, fast-forwarded to where the history ended).
3. Start the stages as supervised processes (a crashed stage is restarted and reported):
   ``preprocess``, ``twin`` (with its HTTP API), ``bridge``, the ``dashboard`` when installed.
4. Once the history is preprocessed, train the first model from Kafka (the last ``warmup``
   minutes of the clean topic) and promote it; then start ``score`` and the devices sending
   over MQTT in real time.
5. Every few seconds print events/s per stage, anomalies and detection quality so far against
   the simulator's labels (for the live events only: the history was the training data); at
   the end (``duration`` or Ctrl-C) stop every stage, and the stack when the demo started it,
   and print a final report.
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.demo._settings import DemoSettings

if TYPE_CHECKING:
    from lakeless.demo._demo import DemoError, DemoReport, run_demo

__all__ = ["DemoError", "DemoReport", "DemoSettings", "run_demo"]

__getattr__ = lazy_attributes(__name__, {"._demo": ["DemoError", "DemoReport", "run_demo"]})
