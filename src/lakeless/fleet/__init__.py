"""The car-fleet simulator: physically consistent sensor events with labelled failures.

`Fleet` advances every car at once with numpy and returns a column-wise `FleetBatch` per step
(`PumpFleet`, the pumps example's devices, does the same with another physical model);
`Simulator` paces a fleet into a sink (MQTT QoS 1 on ``vehicles/<car_id>/sensors``, Kafka
``sensor-raw`` keyed by car id with the event time as record timestamp, stdout, memory) until
a duration, count, timeout or SIGTERM. The physics, the failure modes and how they are labelled
are described in ``lakeless.fleet._fleet``.

Example:
    >>> from lakeless.fleet import fleet_events
    >>> event = next(fleet_events(cars=10, seed=42, start=0))
    >>> event.car_id, event.seq, event.failure
    ('car-00000', 0, None)
"""

from typing import TYPE_CHECKING

from lakeless._lazy import lazy_attributes
from lakeless.fleet._settings import FleetSettings

if TYPE_CHECKING:
    from lakeless.fleet._fleet import Fleet, FleetBatch
    from lakeless.fleet._profiles import DEFAULT_MIX, FAILURE_MODES, PROFILES, VehicleProfile
    from lakeless.fleet._pumps import PUMP_FAULTS, PumpBatch, PumpFleet
    from lakeless.fleet._run import (
        SimulationStats,
        Simulator,
        fleet_events,
        make_sink,
        run_simulation,
        simulate_to_kafka,
        simulator_for,
    )
    from lakeless.fleet._sinks import (
        MQTT_TOPIC,
        BaseEventSink,
        KafkaSink,
        MemorySink,
        MqttSink,
        NullSink,
        SimulationError,
        StreamSink,
    )

__all__ = [
    "DEFAULT_MIX",
    "FAILURE_MODES",
    "MQTT_TOPIC",
    "PROFILES",
    "PUMP_FAULTS",
    "BaseEventSink",
    "Fleet",
    "FleetBatch",
    "FleetSettings",
    "KafkaSink",
    "MemorySink",
    "MqttSink",
    "NullSink",
    "PumpBatch",
    "PumpFleet",
    "SimulationError",
    "SimulationStats",
    "Simulator",
    "StreamSink",
    "VehicleProfile",
    "fleet_events",
    "make_sink",
    "run_simulation",
    "simulate_to_kafka",
    "simulator_for",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "._fleet": ["Fleet", "FleetBatch"],
        "._profiles": ["DEFAULT_MIX", "FAILURE_MODES", "PROFILES", "VehicleProfile"],
        "._pumps": ["PUMP_FAULTS", "PumpBatch", "PumpFleet"],
        "._run": [
            "SimulationStats",
            "Simulator",
            "fleet_events",
            "make_sink",
            "run_simulation",
            "simulate_to_kafka",
            "simulator_for",
        ],
        "._sinks": [
            "MQTT_TOPIC",
            "BaseEventSink",
            "KafkaSink",
            "MemorySink",
            "MqttSink",
            "NullSink",
            "SimulationError",
            "StreamSink",
        ],
    },
)
