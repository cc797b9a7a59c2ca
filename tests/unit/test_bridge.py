"""The bridge's settings and topic mapping (no broker)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lakeless.bridge import Bridge, BridgeSettings, key_from_topic
from lakeless.config import Settings
from lakeless.examples import example_schema
from lakeless.pipeline import Pipeline


def test_subscriptions_per_pipeline_and_template() -> None:
    assert BridgeSettings().subscription("car-fleet") == "vehicles/+/sensors"
    assert BridgeSettings().subscription("pumps") == "pumps/+"
    assert BridgeSettings(share_group="g").subscription("pumps") == "$share/g/pumps/+"
    custom = BridgeSettings(mqtt_topic="plants/+/pumps/{key}/data")
    assert custom.subscription("pumps") == "plants/+/pumps/+/data"


@pytest.mark.parametrize(
    "options",
    [
        {"mqtt_topic": "plants/pumps"},  # no {key}
        {"mqtt_topic": "x/{key}/{key}"},
        {"mqtt_topic": "x/{key}/#"},
        {"mqtt_topic": "x/a+b/{key}"},
        {"mqtt_topic": "x/{key}s"},
        {"share_group": "a/b"},
        {"share_group": "a+b"},
        {"share_group": ""},
    ],
)
def test_malformed_topics_and_groups_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        BridgeSettings(**options)  # type: ignore[arg-type]


def test_key_from_topic() -> None:
    key_of = key_from_topic("plants/+/pumps/{key}")
    assert key_of("plants/a/pumps/p-1") == "p-1"
    assert key_of("plants/a/pumps/") is None  # an empty key level
    assert key_of("plants/a/pumps/p-1/x") is None
    assert key_of("plants/a/valves/p-1") is None


def test_a_new_bridge_is_not_ready_and_reads_its_pipeline() -> None:
    pipeline = Pipeline.new("pumps", example_schema("pumps"))
    bridge = Bridge(Settings(), pipeline)
    assert (bridge.template, bridge.subscription) == ("pumps/{key}", "pumps/+")
    assert not bridge.ready and bridge.sessions == 0
    assert not bridge.wait_ready(0.01)
    bridge.request_stop()  # not running: nothing to stop, no error
