"""The tier benchmark end to end on the session's S3-tiered broker, tiny; nothing about speed."""

from __future__ import annotations

import pytest

from lakeless.bench._tier import (
    LOCAL,
    REMOTE,
    REMOTE_FIRST,
    TIER_PATHS,
    TierBenchSettings,
    run_tier_bench,
)
from lakeless.kafka import list_topics
from lakeless.stack import Stack

pytestmark = pytest.mark.slow


def test_tier_suite_reads_the_same_window_from_s3_and_from_disk(s3_stack: Stack) -> None:
    bench = TierBenchSettings(mib=6, partitions=2, segment_mib=1, repeats=3, timeout=120)
    data = run_tier_bench(bench, s3_stack.kafka_settings).to_dict()

    assert [r["name"] for r in data["results"]] == list(TIER_PATHS)
    by_name = {r["name"]: r for r in data["results"]}
    for name in TIER_PATHS:
        assert by_name[name]["events"] == bench.records, by_name[name]
        assert by_name[name]["events_per_s"] > 0
    for name in (LOCAL, REMOTE):
        assert len(by_name[name]["extra"]["repeats_events_per_s"]) == 3
        assert by_name[name]["extra"]["bytes"] == bench.records * bench.record_bytes
    assert by_name[LOCAL]["ratio_to_ceiling"] == 1.0
    ratio = data["ratio"]
    assert ratio["name"] == "remote / local" and ratio["goal"] == ">= 0.8"
    assert ratio["value"] == pytest.approx(by_name[REMOTE]["ratio_to_ceiling"], abs=1e-3)
    assert by_name[REMOTE_FIRST]["extra"]["note"]
    # The suite deletes its topics from a broker it did not start.
    assert not [t for t in list_topics(s3_stack.kafka_settings) if "-tier-" in t]
