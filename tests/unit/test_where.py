"""Filter expressions: semantics, type checks, positions, and injection attempts."""

from __future__ import annotations

from typing import Any

import pytest

from lakeless.errors import LakelessError
from lakeless.examples import car_fleet, example_schema
from lakeless.preprocess import FilterError, compile_filter
from lakeless.testing.corpus import good_record
from lakeless.testing.events import decode_event

CAR = car_fleet()
PUMPS = example_schema("pumps")


def event(**fields: object) -> Any:
    return decode_event(good_record(CAR, ts=1_700_000_000_000, **fields), CAR)


EVENTS = [
    event(car_id="car-1", speed=0.0, throttle_pos=0.0),
    event(car_id="car-2", speed=30.0, throttle_pos=0.95, model="e-suv"),
    event(car_id="car-3", speed=12.5, failure="flat_tire"),
    event(car_id="car-4", speed=0.5, throttle_pos=0.5, model="it's"),
]

CASES = [
    ("model == 'e-sedan' and speed > 0", [False, False, True, False]),
    ("failure is null", [True, True, False, True]),
    ("failure is not null", [False, False, True, False]),
    ("failure IS NOT NULL", [False, False, True, False]),
    ("car_id in ('car-1','car-2')", [True, True, False, False]),
    ('car_id in ("car-1", "car-3",)', [True, False, True, False]),
    ("car_id not in ('car-1')", [False, True, True, True]),
    ("not (speed < 1 or throttle_pos > 0.9)", [False, False, True, False]),
    ("speed >= 12.5", [False, True, True, False]),
    ("speed <= 12.5", [True, False, True, True]),
    ("speed != 0", [False, True, True, True]),
    ("speed <> 0", [False, True, True, True]),
    ("speed = 0", [True, False, False, False]),
    ("0 < speed", [False, True, True, True]),
    ("12.5 >= speed", [True, False, True, True]),
    ("speed in (0, 30)", [True, True, False, False]),
    ("speed > -1e3", [True, True, True, True]),
    ("speed > .4 AND speed < 1", [False, False, False, True]),
    ("model == 'it''s'", [False, False, False, True]),
    ("failure == 'flat_tire'", [False, False, True, False]),
    ("failure != 'flat_tire'", [True, True, False, True]),  # null is unequal, not unknown
    ("failure in ('flat_tire', 'x')", [False, False, True, False]),
    ("coolant_temp > intake_air_temp", [True, True, True, True]),
    ("seq == 0 and ts > 1600000000000", [True, True, True, True]),
    ("true", [True, True, True, True]),
    ("false or speed > 20", [False, True, False, False]),
    ("not not (speed > 20)", [False, True, False, False]),
    (
        "speed > 1 or speed < 1 and throttle_pos > 0.9",
        [False, True, True, False],
    ),  # and binds tighter
]


@pytest.mark.parametrize(("expression", "expected"), CASES)
def test_predicate(expression: str, expected: list[bool]) -> None:
    where = compile_filter(expression, CAR)
    assert [where(e) for e in EVENTS] == expected


PUMP_EVENTS = [
    decode_event(good_record(PUMPS, **fields), PUMPS)
    for fields in (
        {"pump_id": "p-1", "speed_rpm": 0},
        {"pump_id": "p-2", "pump_type": "booster", "fault": "cavitation", "speed_rpm": 2950},
        {"pump_id": "p-3", "site": "plant-b", "flow_rate": 499.5, "motor_current": 12},
    )
]

PUMP_CASES = [
    ("fault is null", [True, False, True]),
    ("fault == 'cavitation' or speed_rpm == 0", [True, True, False]),
    ("pump_type != 'booster' and site in ('plant-a')", [True, False, False]),
    ("flow_rate > motor_current * 1", None),  # arithmetic is not part of the language
    ("speed_rpm >= 2950.0", [False, True, True]),
    ("motor_current < 50 and timestamp > 0", [False, False, True]),
]


@pytest.mark.parametrize(("expression", "expected"), PUMP_CASES)
def test_predicate_over_another_schema(expression: str, expected: list[bool] | None) -> None:
    if expected is None:
        with pytest.raises(FilterError):
            compile_filter(expression, PUMPS)
        return
    where = compile_filter(expression, PUMPS)
    assert [where(e) for e in PUMP_EVENTS] == expected


def test_fields_and_types_come_from_the_schema() -> None:
    with pytest.raises(FilterError, match="unknown field 'speed'"):
        compile_filter("speed > 0", PUMPS)
    with pytest.raises(FilterError, match="field 'site' is never null"):
        compile_filter("site is null", PUMPS)
    with pytest.raises(FilterError, match="cannot compare string field 'pump_type'"):
        compile_filter("pump_type == 1", PUMPS)
    with pytest.raises(FilterError, match="unknown field 'pump_id'"):
        compile_filter("pump_id == 'x'", CAR)


BAD = [
    # (expression, message fragment, position)
    ("sped > 0", "unknown field 'sped' (did you mean 'speed'?)", 0),
    ("speed > 'fast'", "cannot compare number field 'speed' with string", 6),
    ("model == 3", "cannot compare string field 'model' with number", 6),
    ("model < 'x'", "strings only support == and !=", 6),
    ("speed is null", "field 'speed' is never null", 0),
    ("failure == null", "'is null'", 11),
    ("speed == true", "no field is boolean", 9),
    ("true == speed", "no field is boolean", 0),
    ("speed >", "expected a field or a literal, found the end", 7),
    ("speed > 0 and", "expected a field or a literal", 13),
    ("(speed > 0", "expected ')'", 10),
    ("speed > 0)", "expected 'and', 'or' or the end", 9),
    ("1 < 2", "at least one field", 0),
    ("speed", "expected a comparison operator", 5),
    ("speed > 1x", "malformed number", 8),
    ("speed > 1.2.3", "malformed number", 8),
    ("model == 'open", "unterminated string", 9),
    ("speed > 1e999", "out of range", 8),
    ("car_id in ()", "expected a literal", 11),
    ("car_id in ('a', 1)", "cannot compare string field 'car_id' with number", 16),
    ("", "empty expression", 0),
    ("   ", "empty expression", 3),
    ("speed > 0 && speed < 1", "unexpected character '&'", 10),
    ("speed > 0 and and", "keyword 'and'", 14),
]


@pytest.mark.parametrize(("expression", "fragment", "position"), BAD)
def test_bad_expression(expression: str, fragment: str, position: int) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expression, CAR)
    assert fragment in info.value.reason
    assert info.value.position == position
    assert isinstance(info.value, LakelessError)
    # the message shows the expression and a marker under the position
    lines = str(info.value).splitlines()
    assert lines[1] == f"  {expression}"
    assert lines[2].index("^") == 2 + position


INJECTIONS = [
    "__import__('os').system('id')",
    "speed.__class__",
    "speed > 0 and __builtins__",
    "open('/etc/passwd')",
    "eval('1')",
    "speed > (lambda: 1)()",
    "[x for x in ()]",
    "speed > 0; import os",
    "speed > 0 or exec('x')",
    "model == 'a' + 'b'",
    "speed > 0x10",
    "speed > 1_000",
    "{'a': 1}",
    "speed > `id`",
    "speed > $x",
    "model == f'{speed}'",
    "speed.real > 0",
    "model.upper() == 'X'",
    "getattr(speed, 'x')",
]


@pytest.mark.parametrize("expression", INJECTIONS)
def test_injection_attempts_are_rejected(expression: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(expression, CAR)


def test_deep_nesting_is_a_filter_error_not_a_crash() -> None:
    with pytest.raises(FilterError, match="nested deeper"):
        compile_filter("(" * 1000 + "speed > 0" + ")" * 1000, CAR)
    with pytest.raises(FilterError, match="nested deeper"):
        compile_filter("not " * 500 + "speed > 0", CAR)
    compile_filter("(" * 30 + "speed > 0" + ")" * 30, CAR)


def test_long_expression_rejected() -> None:
    with pytest.raises(FilterError, match="too long"):
        compile_filter(" or ".join(["speed > 0"] * 1000), CAR)


def test_many_terms_do_not_hit_recursion_limits() -> None:
    where = compile_filter(" or ".join(f"seq == {i}" for i in range(300)), CAR)
    assert where(EVENTS[0])
