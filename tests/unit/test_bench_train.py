"""The train bench's ratios, report shape, record encoding and tfio-venv handling (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from lakeless.bench import BenchResult, _train, _train_tfio
from lakeless.bench._result import skipped
from lakeless.bench._rows import ParquetRows, encode_clean_rows, read_parquet_features
from lakeless.bench._train import (
    FULL_EPOCHS,
    FULL_ROWS,
    QUICK_EPOCHS,
    QUICK_ROWS,
    TrainBenchSettings,
)
from lakeless.bench._train_report import (
    MEMORY_TF,
    PARQUET_NUMPY,
    RAW_CONSUME,
    READER_NUMPY,
    READER_TF,
    TFIO,
    TFIO_PER_MESSAGE,
    TRAIN_KAFKA,
    TRAIN_PARQUET,
    TRAIN_PATHS,
    TrainBenchReport,
    compute_ratios,
)
from lakeless.bench._train_tfio import TFIO_REQUIREMENTS, TfioUnavailableError, ensure_tfio_venv
from lakeless.cli import app
from lakeless.config import KafkaSettings
from lakeless.examples import car_fleet
from lakeless.fleet import Fleet
from lakeless.schema import CleanCodec, Decoder
from lakeless.testing.models import FEATURES


def full_results() -> list[BenchResult]:
    return [
        BenchResult(RAW_CONSUME, 1000, 0.8),  # 1250/s
        BenchResult(READER_NUMPY, 1000, 1.0),  # 1000/s
        BenchResult(READER_TF, 1000, 2.0),  # 500/s
        BenchResult(MEMORY_TF, 1000, 1.6),  # 625/s
        BenchResult(PARQUET_NUMPY, 1000, 0.5),  # 2000/s
        BenchResult(TFIO, 1000, 10.0),  # 100/s
        BenchResult(TFIO_PER_MESSAGE, 1000, 40.0),  # 25/s
        BenchResult(TRAIN_KAFKA, 3000, 11.0),
        BenchResult(TRAIN_PARQUET, 3000, 10.0),
    ]


def test_ratios_divide_the_right_metric_and_check_goals() -> None:
    ratios = {r.spec.name: r for r in compute_ratios(full_results())}

    assert ratios[f"{READER_TF} / {TFIO_PER_MESSAGE}"].value == 20.0
    assert ratios[f"{READER_TF} / {TFIO_PER_MESSAGE}"].met is True
    assert ratios[f"{READER_NUMPY} / {TFIO_PER_MESSAGE}"].value == 40.0
    batched = ratios[f"{READER_TF} / {TFIO}"]  # the favourable peer: informational
    assert (batched.value, batched.met, batched.spec.goal) == (5.0, None, None)
    train = ratios[f"{TRAIN_KAFKA} / {TRAIN_PARQUET}"]
    assert (train.value, train.met, train.spec.metric) == (1.1, True, "seconds")
    lake = ratios[f"{READER_NUMPY} / {PARQUET_NUMPY}"]
    assert (lake.value, lake.met, lake.spec.goal) == (0.5, None, None)
    ceiling = ratios[f"{READER_NUMPY} / {RAW_CONSUME}"]
    assert (ceiling.value, ceiling.met, ceiling.spec.goal) == (0.8, True, (">=", 0.8))
    tf_data = ratios[f"{READER_TF} / {READER_NUMPY}"]
    assert (tf_data.value, tf_data.met) == (0.5, False)
    bound = ratios[f"{READER_TF} / {MEMORY_TF}"]  # tf.data's own ceiling: informational
    assert (bound.value, bound.met, bound.spec.goal) == (0.8, None, None)


def test_goals_not_met_are_reported() -> None:
    results = full_results()
    results[6] = BenchResult(TFIO_PER_MESSAGE, 1000, 5.0)  # 200/s: reader->tf.data only 2.5x
    results[7] = BenchResult(TRAIN_KAFKA, 3000, 13.0)
    ratios = {r.spec.name: r for r in compute_ratios(results)}
    assert ratios[f"{READER_TF} / {TFIO_PER_MESSAGE}"].met is False
    assert ratios[f"{TRAIN_KAFKA} / {TRAIN_PARQUET}"].met is False


@pytest.mark.parametrize(
    "tfio",
    [
        skipped(TFIO_PER_MESSAGE, "--no-tfio"),
        BenchResult(TFIO_PER_MESSAGE, 0, 0.0, {"failed": True, "reason": "--no-tfio"}),
    ],
)
def test_a_skipped_or_failed_side_gives_no_value_but_a_reason(tfio: BenchResult) -> None:
    results = full_results()
    results[6] = tfio
    ratios = {r.spec.name: r for r in compute_ratios(results)}
    ratio = ratios[f"{READER_TF} / {TFIO_PER_MESSAGE}"]
    assert ratio.value is None and ratio.met is None
    assert ratio.reason == f"{TFIO_PER_MESSAGE}: --no-tfio"
    assert ratios[f"{TRAIN_KAFKA} / {TRAIN_PARQUET}"].value == 1.1  # the rest still counts


def test_incomplete_and_missing_results_give_no_value() -> None:
    results = full_results()
    results[1] = BenchResult(READER_NUMPY, 10, 1.0, {"complete": False})
    del results[8]
    ratios = {r.spec.name: r for r in compute_ratios(results)}
    assert ratios[f"{READER_NUMPY} / {TFIO}"].reason == f"{READER_NUMPY}: incomplete"
    assert ratios[f"{TRAIN_KAFKA} / {TRAIN_PARQUET}"].reason == f"{TRAIN_PARQUET}: not measured"


def test_report_json_carries_ratio_fields() -> None:
    report = TrainBenchReport("train", full_results(), machine={"cpus_usable": 2}, quick=True)
    data = json.loads(report.to_json())

    assert [r["name"] for r in data["results"]] == list(TRAIN_PATHS)
    by_name = {r["name"]: r for r in data["results"]}
    assert by_name[READER_TF]["ratio"] == {
        READER_NUMPY: 0.5,
        MEMORY_TF: 0.8,
        TFIO_PER_MESSAGE: 20.0,
        TFIO: 5.0,
    }
    assert by_name[READER_NUMPY]["ratio"] == {
        RAW_CONSUME: 0.8,
        TFIO_PER_MESSAGE: 40.0,
        TFIO: 10.0,
        PARQUET_NUMPY: 0.5,
    }
    assert by_name[TRAIN_KAFKA]["ratio"] == {TRAIN_PARQUET: 1.1}
    assert "ratio" not in by_name[TFIO]
    assert by_name[TFIO]["events_per_s"] == 100.0
    goals = {r["name"]: (r["goal"], r["met"]) for r in data["ratios"]}
    assert goals[f"{READER_TF} / {TFIO_PER_MESSAGE}"] == (">= 10", True)
    assert goals[f"{READER_TF} / {TFIO}"] == (None, None)
    assert goals[f"{TRAIN_KAFKA} / {TRAIN_PARQUET}"] == ("<= 1.2", True)
    assert data["suite"] == "train" and data["quick"] is True


def test_report_table_renders_ratios() -> None:
    results = full_results()
    results[5] = skipped(TFIO, "no tensorflow-io virtualenv: offline")
    console = Console(width=200, record=True)
    console.print(TrainBenchReport("train", results, machine={}).table())
    text = " ".join(console.export_text().split())  # the caption wraps
    assert "train-from-kafka / train-from-parquet (seconds) = 1.10 (goal <= 1.2: met)" in text
    assert "n/a, tensorflow-io: no tensorflow-io virtualenv: offline" in text


def test_settings_for_mode() -> None:
    quick = TrainBenchSettings.for_mode(True)
    assert (quick.rows, quick.epochs, quick.quick) == (QUICK_ROWS, QUICK_EPOCHS, True)
    assert quick.repeats == 1
    full = TrainBenchSettings.for_mode(False)
    assert (full.rows, full.epochs, full.tfio) == (FULL_ROWS, FULL_EPOCHS, True)
    assert full.repeats == 3
    assert FULL_ROWS >= 1_000_000
    custom = TrainBenchSettings.for_mode(True, rows=20_000, epochs=2, tfio=False)
    assert (custom.rows, custom.epochs, custom.tfio) == (20_000, 2, False)


def test_fast_encoding_is_encode_clean_with_labels() -> None:
    fleet = Fleet(40, seed=3, start=0, failure_rate=500.0)
    batches = [fleet.step() for _ in range(30)]
    assert any(b.labels().count(None) < len(b) for b in batches)  # some labelled rows
    codec = CleanCodec(car_fleet())
    for batch in batches:
        events = batch.events()
        encoded = encode_clean_rows(batch)
        assert encoded == [codec.encode(e) for e in events]
        last = Decoder(car_fleet()).decode(encoded[-1:])
        assert (last.key, last.label, last.strings["model"]) == (
            [events[-1].car_id],
            [events[-1].failure],
            [events[-1].model],
        )
        assert last.features(np.float64)[0].tolist() == [getattr(events[-1], f) for f in FEATURES]


def test_parquet_rows_round_trip(tmp_path: Path) -> None:
    batch = Fleet(25, seed=2, start=0).step()
    rows = ParquetRows()
    rows.add(batch, 20)
    path = tmp_path / "rows.parquet"
    assert rows.write_parquet(path) > 0
    x = read_parquet_features(path)
    assert x.shape == (20, len(FEATURES)) and x.dtype == np.float32
    np.testing.assert_array_equal(x, batch.values[:20].astype(np.float32))


def test_an_existing_tfio_venv_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    (tmp_path / ".lakeless-tfio-ready").write_text(" ".join(TFIO_REQUIREMENTS) + "\n")
    assert ensure_tfio_venv(tmp_path) == tmp_path / "bin" / "python"


def test_an_unbuildable_tfio_venv_skips_tensorflow_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(command: list[str], timeout: float, what: str) -> None:
        raise TfioUnavailableError(f"{what} failed: no network")

    monkeypatch.setattr(_train_tfio, "_run", offline)
    bench = TrainBenchSettings(rows=10, tfio_venv=tmp_path / "venv")
    run = _train._TrainRun(bench, KafkaSettings())
    run.prepare_tfio()
    for name, per_message in ((TFIO, False), (TFIO_PER_MESSAGE, True)):
        result = run.tfio(per_message=per_message)
        assert result.name == name and result.extra["skipped"] is True
        assert "no network" in result.extra["reason"]
    assert not (tmp_path / "venv" / ".lakeless-tfio-ready").exists()


def test_no_tfio_skips_without_looking_for_a_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_train, "ensure_tfio_venv", pytest.fail)
    run = _train._TrainRun(TrainBenchSettings(rows=10, tfio=False), KafkaSettings())
    assert run.prepare_tfio() == {}
    for per_message in (False, True):
        assert run.tfio(per_message=per_message).extra == {"skipped": True, "reason": "--no-tfio"}


def test_cli_passes_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake(bench: TrainBenchSettings, kafka: KafkaSettings | None) -> TrainBenchReport:
        seen["bench"], seen["kafka"] = bench, kafka
        return TrainBenchReport("train", full_results(), machine={})

    monkeypatch.setattr(_train, "run_train_bench", fake)
    result = CliRunner().invoke(
        app,
        ["bench", "train", "--quick", "--rows", "500", "--no-tfio", "--bootstrap", "h:1",
         "--repeats", "2", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["results"]] == list(TRAIN_PATHS)
    bench = seen["bench"]
    assert isinstance(bench, TrainBenchSettings)
    assert (bench.rows, bench.epochs, bench.tfio, bench.quick) == (500, QUICK_EPOCHS, False, True)
    assert bench.repeats == 2
    kafka = seen["kafka"]
    assert isinstance(kafka, KafkaSettings) and kafka.bootstrap_servers == "h:1"
