"""The car fleet's data contract, as the simulator uses it (from ``car-fleet.avsc``)."""

from __future__ import annotations

from typing import Any, Final

from lakeless.examples import car_fleet
from lakeless.schema import event_type

__all__ = ["FEATURES", "SCHEMA", "SensorEvent"]

#: The car fleet's schema (the default pipeline's).
SCHEMA: Final = car_fleet()
#: The 18 sensor fields, in schema order.
FEATURES: Final = SCHEMA.feature_names
#: One reading of one car: the generated event class of the schema.
SensorEvent: Any = event_type(SCHEMA)
