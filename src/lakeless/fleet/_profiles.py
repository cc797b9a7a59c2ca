"""Vehicle models and failure modes of the simulated fleet.

Each `VehicleProfile` holds the physical constants one vehicle model differs by: mass and drag
(how much force, hence current, a given speed and acceleration take), battery pack (voltage,
capacity, internal resistance), cooling, vibration and suspension coefficients, tire pressure.
The numbers are plausible for their class, not data sheets of any real car.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final


@dataclass(frozen=True)
class VehicleProfile:
    """Physical constants of one vehicle model.

    Attributes:
        name: model name, written to the ``model`` field.
        mass: kg, loaded.
        drag_area: drag coefficient times frontal area, m^2.
        rolling: rolling-resistance coefficient.
        max_power: peak motor power, W.
        max_accel: comfortable peak acceleration a driver asks for, m/s^2.
        cruise_speed: median cruising speed of this model's duty cycle, m/s.
        pack_voltage: nominal pack voltage, V (open-circuit voltage at about 80 % charge).
        capacity_wh: usable pack energy, Wh.
        resistance: pack internal resistance at 20 degC, ohm.
        charge_power: charger power while parked, W.
        heat_base: heat into the coolant while the car is on (pumps, electronics), W.
        heat_per_amp: converter/motor losses proportional to current, W/A.
        heat_per_amp2: resistive losses proportional to current squared, W/A^2.
        cooling: radiator conductance with no air flow, W/K (air flow multiplies it).
        heat_capacity: thermal mass of the coolant loop, J/K (sets the thermal lag).
        duct_area: effective area of the cooling-air intake, m^2 (flow = density x area x speed).
        vibration: drive-train vibration per unit speed, um per m/s.
        idle_vibration: vibration while standing with the car on, um.
        suspension: wheel accelerometer amplitude scale (stiffer suspension, higher values).
        tire_pressure: cold tire pressure the tires are filled to, psi.
        firmware: control-unit firmware versions deployed on this model.
    """

    name: str
    mass: float
    drag_area: float
    rolling: float
    max_power: float
    max_accel: float
    cruise_speed: float
    pack_voltage: float
    capacity_wh: float
    resistance: float
    charge_power: float
    heat_base: float
    heat_per_amp: float
    heat_per_amp2: float
    cooling: float
    heat_capacity: float
    duct_area: float
    vibration: float
    idle_vibration: float
    suspension: float
    tire_pressure: float
    firmware: tuple[float, ...]


#: The vehicle models the simulator knows, by name.
PROFILES: Final[dict[str, VehicleProfile]] = {
    p.name: p
    for p in (
        VehicleProfile(
            name="e-sedan",
            mass=1950.0,
            drag_area=0.55,
            rolling=0.009,
            max_power=210_000.0,
            max_accel=2.6,
            cruise_speed=17.0,
            pack_voltage=400.0,
            capacity_wh=75_000.0,
            resistance=0.080,
            charge_power=120_000.0,
            heat_base=150.0,
            heat_per_amp=14.0,
            heat_per_amp2=0.008,
            cooling=11.0,
            heat_capacity=1_400.0,
            duct_area=0.013,
            vibration=95.0,
            idle_vibration=12.0,
            suspension=1.0,
            tire_pressure=42.0,
            firmware=(2031.0, 2040.0, 2044.0),
        ),
        VehicleProfile(
            name="e-suv",
            mass=2650.0,
            drag_area=0.85,
            rolling=0.010,
            max_power=300_000.0,
            max_accel=2.8,
            cruise_speed=18.0,
            pack_voltage=760.0,
            capacity_wh=95_000.0,
            resistance=0.150,
            charge_power=200_000.0,
            heat_base=200.0,
            heat_per_amp=27.0,
            heat_per_amp2=0.01,
            cooling=13.0,
            heat_capacity=1_900.0,
            duct_area=0.014,
            vibration=110.0,
            idle_vibration=15.0,
            suspension=0.85,
            tire_pressure=38.0,
            firmware=(3012.0, 3020.0),
        ),
        VehicleProfile(
            name="e-van",
            mass=3300.0,
            drag_area=1.30,
            rolling=0.011,
            max_power=150_000.0,
            max_accel=1.8,
            cruise_speed=13.0,
            pack_voltage=350.0,
            capacity_wh=70_000.0,
            resistance=0.095,
            charge_power=90_000.0,
            heat_base=180.0,
            heat_per_amp=12.0,
            heat_per_amp2=0.01,
            cooling=12.0,
            heat_capacity=1_800.0,
            duct_area=0.014,
            vibration=140.0,
            idle_vibration=18.0,
            suspension=1.35,
            tire_pressure=55.0,
            firmware=(1107.0, 1110.0),
        ),
        VehicleProfile(
            name="hybrid-hatch",
            mass=1450.0,
            drag_area=0.62,
            rolling=0.010,
            max_power=100_000.0,
            max_accel=2.2,
            cruise_speed=15.0,
            pack_voltage=300.0,
            capacity_wh=14_000.0,
            resistance=0.110,
            charge_power=7_000.0,
            heat_base=400.0,
            heat_per_amp=10.0,
            heat_per_amp2=0.012,
            cooling=14.0,
            heat_capacity=1_500.0,
            duct_area=0.012,
            vibration=120.0,
            idle_vibration=45.0,
            suspension=1.1,
            tire_pressure=35.0,
            firmware=(512.0, 520.0, 522.0),
        ),
    )
}

#: Default mix of vehicle models in a fleet (fractions sum to 1).
DEFAULT_MIX: Final[dict[str, float]] = {
    "e-sedan": 0.40,
    "e-suv": 0.25,
    "e-van": 0.20,
    "hybrid-hatch": 0.15,
}

#: Failure modes, in code order (``failure`` label values).
FAILURE_MODES: Final = ("tire_pressure", "shock", "drive_shaft", "overheating", "battery")

#: Numeric attributes of `VehicleProfile`, gathered into per-car arrays by the fleet.
NUMERIC_ATTRIBUTES: Final = tuple(
    f.name for f in fields(VehicleProfile) if f.name not in ("name", "firmware")
)
