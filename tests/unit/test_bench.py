"""The bench report's JSON shape and ratio math, the producer-perf parser, and the CLI (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import lakeless.bench
from lakeless.bench import BenchReport, BenchResult, IngestBenchSettings
from lakeless.bench._harness import BenchError, java_client_properties
from lakeless.bench._ingest import (
    CEILING,
    INGEST_PATHS,
    MIN_CEILING_EVENTS,
    QUICK_EVENTS,
    parse_producer_perf,
)
from lakeless.cli import app
from lakeless.config import KafkaSettings

PERF_OUTPUT = """\
Reading payloads from: /tmp/payloads.jsonl
Number of records read: 1000
149901 records sent, 29974.2 records/sec (16.26 MB/sec), 412.3 ms avg latency, 800.0 ms max latency.
300000 records sent, 61234.500000 records/sec (33.21 MB/sec), 56.72 ms avg latency, \
846.00 ms max latency, 40 ms 50th, 200 ms 95th, 300 ms 99th, 700 ms 99.9th.
"""


def fake_report(quick: bool = True) -> BenchReport:
    return BenchReport(
        "ingest",
        [
            BenchResult(CEILING, 300_000, 5.0, {"note": "java"}),
            BenchResult("simulate->mqtt", 30_000, 1.5),
            BenchResult("bridge", 30_000, 2.0),
            BenchResult("simulate->kafka", 30_000, 0.25),
            BenchResult("preprocess", 30_000, 3.0),
        ],
        ceiling=CEILING,
        quick=quick,
        machine={"cpu_count": 2},
        wall_seconds=20.0,
    )


def test_report_json_shape_and_ratios() -> None:
    data = json.loads(fake_report().to_json())
    assert set(data) == {"suite", "results", "ceiling", "machine", "quick", "wall_seconds"}
    assert data["quick"] is True
    assert data["machine"] == {"cpu_count": 2}
    assert [r["name"] for r in data["results"]] == list(INGEST_PATHS)
    by_name = {r["name"]: r for r in data["results"]}
    assert by_name[CEILING]["events_per_s"] == 60_000.0
    assert by_name[CEILING]["ratio_to_ceiling"] == 1.0
    assert by_name["bridge"]["events_per_s"] == 15_000.0
    assert by_name["bridge"]["ratio_to_ceiling"] == 0.25
    assert by_name["simulate->kafka"]["ratio_to_ceiling"] == 2.0  # a path may beat the ceiling
    assert by_name["preprocess"]["ratio_to_ceiling"] == pytest.approx(1 / 6, abs=1e-3)
    for result in data["results"]:
        assert set(result) == {
            "name",
            "events_per_s",
            "events",
            "seconds",
            "ratio_to_ceiling",
            "extra",
        }


def test_no_ceiling_or_zero_rate_gives_no_ratio() -> None:
    zero = BenchResult("nothing", 0, 0.0)
    assert zero.events_per_s == 0.0
    report = BenchReport("x", [zero, BenchResult("a", 10, 1.0)], ceiling="nothing", machine={})
    assert report.ceiling_per_s is None
    assert [r["ratio_to_ceiling"] for r in report.to_dict()["results"]] == [None, None]
    unnamed = BenchReport("x", [BenchResult("a", 10, 1.0)], machine={})
    assert unnamed.to_dict()["results"][0]["ratio_to_ceiling"] is None


def test_machine_info_by_default() -> None:
    machine = BenchReport("x", []).machine
    assert machine["cpu_count"] >= 1
    assert "python" in machine


def test_table_renders_every_path() -> None:
    console = Console(width=160, record=True)
    console.print(fake_report().table())
    text = console.export_text()
    for name in INGEST_PATHS:
        assert name in text
    assert "0.25" in text  # the bridge's ratio


def test_parse_producer_perf_takes_the_summary_line() -> None:
    records, rate, latencies = parse_producer_perf(PERF_OUTPUT)
    assert (records, rate) == (300_000, 61234.5)
    assert latencies == {"mb_per_s": 33.21, "avg_latency_ms": 56.72, "max_latency_ms": 846.0}


def test_parse_producer_perf_rejects_other_output() -> None:
    with pytest.raises(BenchError, match="no summary line"):
        parse_producer_perf("149901 records sent, 29974.2 records/sec (16.26 MB/sec), 1 ms avg")


def test_modes() -> None:
    quick = IngestBenchSettings.for_mode(True)
    assert quick.quick and quick.events == QUICK_EVENTS
    assert quick.perf_events == MIN_CEILING_EVENTS
    full = IngestBenchSettings.for_mode(False, events=1_000_000)
    assert not full.quick and full.perf_events == 1_000_000 and full.timeout > quick.timeout
    assert IngestBenchSettings(events=10, ceiling_events=20).perf_events == 20


def test_java_client_properties_for_sasl_tls() -> None:
    plain = java_client_properties(KafkaSettings(bootstrap_servers="b:9092"))
    assert plain == {"bootstrap.servers": "b:9092", "security.protocol": "PLAINTEXT"}
    secure = java_client_properties(
        KafkaSettings(
            bootstrap_servers="b:9093",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="u",
            sasl_password='p"q',  # type: ignore[arg-type]
            ssl_ca_location="/ca.pem",
        )
    )
    jaas = secure["sasl.jaas.config"]
    assert jaas.endswith('ScramLoginModule required username="u" password="p\\"q";')
    assert secure["ssl.truststore.type"] == "PEM"


def test_cli_json_prints_exactly_one_object(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def fake_run(bench: IngestBenchSettings, kafka: Any, mqtt: Any) -> BenchReport:
        calls.append((bench, kafka, mqtt))
        return fake_report(bench.quick)

    monkeypatch.setattr(lakeless.bench, "run_ingest_bench", fake_run)
    result = CliRunner().invoke(
        app,
        ["bench", "ingest", "--quick", "--json", "--bootstrap", "b:9092", "--events", "5000"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["quick"] is True and len(data["results"]) == len(INGEST_PATHS)
    bench, kafka, mqtt = calls[0]
    assert bench.events == 5000 and bench.quick
    assert kafka.bootstrap_servers == "b:9092"
    assert mqtt is None  # a throwaway Mosquitto


def test_cli_help_shows_env_vars() -> None:
    result = CliRunner().invoke(app, ["bench", "ingest", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in ("QUICK", "EVENTS", "BOOTSTRAP", "MQTT", "JSON"):
        assert f"LAKELESS_BENCH_{name}" in result.stdout
