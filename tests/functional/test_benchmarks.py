"""The benchmark runner end to end on a tiny configuration. Times and ratios are printed, never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report
from benchmarks.baselines import split_indices
from benchmarks.run import keras_on_its_backend
from benchmarks.worker import loops_of
from runtime.common import data as fmnist
from runtime.common.recipe import load_splits
from tests.conftest import REPO as ROOT
from tests.recipes import make_recipe

LOOPS = {("torch", "baseline"), ("torch", "generated"), ("keras", "baseline"), ("keras", "generated")}
LOOPS |= {("keras", "generated-xla")}
RECIPE = make_recipe(validation_split=0.1, seed=0)
BUILD = {"specs": 7, "seconds": 0.5, "frameworks_imported": []}
BENCH_RAN = ("float32 (float32)", "tf32 (float32)", "bf16 (bf16)")  # the GPU check's precisions that run on a CPU


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """The MLP, both frameworks, every loop: 2 epochs on 1,500 images, one round (seed 0; merging rounds is
    test_rounds_merge_into_one_row's, each worker process costs the suite about 15 s)."""
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "benchmarks.run", "--epochs", "2", "--train-limit", "1500", "--models", "mlp"]
    done = subprocess.run(
        [*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "| mlp |" in done.stdout and "Machine:" in done.stdout
    return out


@pytest.mark.needs_data
def test_every_loop_has_a_row_of_positive_figures(results: Path) -> None:
    rows = json.loads((results / "results.json").read_text())["rows"]
    assert {(row["framework"], row["loop"]) for row in rows} == LOOPS
    for row in rows:
        assert len(row["epoch_seconds"]) == 2 and row["train_samples"] == 1500 and row["seeds"] == [0]
        assert row["test_accuracy"] == row["test_accuracies"][0]
        for key in ("best_s", "median_s", "samples_per_s", "peak_rss_mb", "test_accuracy"):
            assert row[key] > 0, (row["framework"], row["loop"], key)


@pytest.mark.needs_data
def test_markdown_table_and_chart_are_written(results: Path) -> None:
    text = (results / "results.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| mlp |")]
    assert len(table) == 5
    for line in table:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert all(float(cell) > 0 for cell in cells[3:10]), line
    assert sum("x** (acc" in line for line in table) == 3  # a ratio on each generated row
    assert "fmnist-dsl build" in text and "not measured" in text
    assert (results / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.needs_data
def test_baseline_indices_are_the_generated_loops_images() -> None:
    train, val = split_indices(RECIPE, train_limit=700)
    splits = load_splits(RECIPE, train_limit=700)
    data = fmnist.load_split_arrays()
    np.testing.assert_array_equal(data.train_images[train], splits.x_train)
    np.testing.assert_array_equal(data.train_images[val], splits.x_val)
    assert len(train) == 700 and len(val) == 6000


@pytest.mark.needs_data
def test_a_worker_trains_keras_on_the_backend_and_precision_it_names(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.worker", "generated-bf16", "keras-torch", "mlp", "--epochs", "1"]
    command += ["--train-limit", "300", "--json", str(tmp_path / "row.json")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads((tmp_path / "row.json").read_text())
    assert (row["backend"], row["precision"], row["train_samples"]) == ("torch", "bf16", 300)
    # 10 steps of 32 images: measured 0.42 where bf16 has native kernels (AVX-512 BF16); emulated bf16 rounds
    # otherwise, hence the wider margin. Chance is 0.1.
    assert row["test_accuracy"] > 0.35, row["test_accuracy"]


def test_keras_runs_on_the_backend_keras_backend_names(monkeypatch) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert keras_on_its_backend(["torch", "keras"]) == ["torch", "keras"]
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # as `fmnist-dsl bench --keras-backend jax` sets it
    assert keras_on_its_backend(["torch", "keras", "keras-jax"]) == ["torch", "keras-jax"]


def test_loops_per_framework() -> None:
    assert loops_of("keras") == ("baseline", "generated", "generated-xla")
    assert loops_of("keras-jax") == loops_of("torch") == ("baseline", "generated")
    assert loops_of("keras-torch", bf16=True) == ("baseline", "generated", "generated-bf16")


def test_bf16_ratio_is_float32_over_bf16_of_the_generated_loop() -> None:
    float32 = {"model": "m", "framework": "torch", "loop": "generated", "median_s": 2.0, "test_accuracy": 0.80}
    float32 |= {"batch_size": 32, "train_samples": 100, "best_s": 1.0, "samples_per_s": 50.0, "peak_rss_mb": 9.0}
    rows = [float32 | {"loop": "baseline", "median_s": 9.0}, float32]
    rows.append(float32 | {"loop": "generated-bf16", "median_s": 1.0, "test_accuracy": 0.79})
    found = report.precision_ratios(rows)
    assert list(found) == [("m", "torch")]
    assert found[("m", "torch")]["speedup"] == pytest.approx(2.0)
    assert found[("m", "torch")]["accuracy_points"] == pytest.approx(-1.0)
    assert "- m, torch: **2.00x** (acc -1.00 pt)" in report.markdown(rows, BUILD, "machine", "settings")


def test_epoch_stats_skip_the_first_epoch_of_every_round() -> None:
    assert report.epoch_stats([[9.0, 2.0, 4.0, 3.0]]) == (2.0, 3.0)
    assert report.epoch_stats([[5.0]]) == (5.0, 5.0)
    assert report.epoch_stats([[9.0, 2.0, 4.0], [8.0, 3.0, 5.0]]) == (2.0, 3.5)


def test_rounds_merge_into_one_row() -> None:
    first = {"epoch_seconds": [9.0, 2.0], "train_samples": 100, "test_accuracy": 0.8, "peak_rss_mb": 10.0}
    second = first | {"epoch_seconds": [8.0, 4.0], "test_accuracy": 0.9, "peak_rss_mb": 12.0}
    row = report.summarize([first, second])
    assert row["rounds"] == 2 and row["epoch_seconds"] == [9.0, 2.0, 8.0, 4.0]
    assert (row["best_s"], row["median_s"], row["samples_per_s"]) == (2.0, 3.0, 100 / 3.0)
    assert row["test_accuracy"] == pytest.approx(0.85) and row["peak_rss_mb"] == 12.0


def test_ratio_is_baseline_over_generated() -> None:
    base = {"model": "m", "framework": "torch", "loop": "baseline", "median_s": 3.0, "test_accuracy": 0.80}
    gen = base | {"loop": "generated", "median_s": 1.0, "test_accuracy": 0.81}
    found = report.ratios([base, gen])[("m", "torch", "generated")]
    assert found["speedup"] == pytest.approx(3.0) and found["accuracy_points"] == pytest.approx(1.0)
    assert found["accuracy_error"] is None  # one round: no spread to measure


def test_accuracy_error_is_the_standard_error_of_the_difference_of_means() -> None:
    base = {"model": "m", "framework": "keras", "loop": "baseline", "median_s": 2.0, "test_accuracies": [0.80, 0.82]}
    gen = base | {"loop": "generated", "median_s": 1.0, "test_accuracies": [0.81, 0.81, 0.84]}
    # variances 2e-4 and 3e-4 over 2 and 3 runs: sqrt(1e-4 + 1e-4) = 0.01414, in points 1.414
    assert report.accuracy_error(base, gen) == pytest.approx(1.4142, abs=1e-4)


@pytest.mark.parametrize(
    ("flags", "expected"), [("sse2 avx2 avx512f", "Test CPU (AVX-512)"), ("avx2", "Test CPU (AVX2)")]
)
def test_machine_line_names_the_widest_vector_extension(tmp_path: Path, flags: str, expected: str) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t: sse2\n")
    assert report.cpu_model(cpuinfo) == expected
    assert report.cpu_model(tmp_path / "missing")  # no /proc: what platform says


@pytest.mark.parametrize(
    ("gpu", "median_s", "expected"),
    [(None, 2.5, "not measured; this run had no GPU."), ("H", 0.5, "0.500 s/epoch median on H at batch 32, met.")],
)
def test_gpu_line_measures_the_generated_mlp_against_the_target(gpu, median_s: float, expected: str) -> None:
    row = {"model": "mlp", "framework": "torch", "loop": "generated", "gpu": gpu, "median_s": median_s}
    baseline = row | {"loop": "baseline", "median_s": 0.1}  # a faster baseline row must not be the one read
    assert report.gpu_line([baseline, row | {"batch_size": 32}]).endswith(expected)
    assert report.gpu_line([row | {"batch_size": 32, "gpu": "H", "median_s": 0.61}]).endswith("not met.")


@pytest.mark.slow  # about 3 minutes on 2 cores: run with --run-slow
@pytest.mark.needs_data
def test_the_gpu_check_runs_in_its_smoke_mode_on_this_cpu() -> None:
    """`python -m benchmarks.gpu --smoke` on Keras's jax backend (as on a GPU machine without TensorFlow): one table
    with parity in float32 and tf32, the generated loops in every precision (fp16 refused here), `best` per framework.
    On this CPU tf32 computes in float32, and the rows say so."""
    command = [sys.executable, "-m", "benchmarks.gpu", "--smoke", "--keras-backends", "jax"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| check | model | framework | precision (ran) | figures | verdict |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[1:]]
    found = {(row[0], row[2], row[3]): row[5] for row in rows}
    assert found == {
        ("parity", "keras/jax", "float32 (float32)"): "ok",
        ("parity", "keras/jax", "tf32 (float32)"): "ok",
        **{("bench", framework, precision): "-" for framework in ("torch", "keras-jax") for precision in BENCH_RAN},
        ("bench", "torch", "fp16"): "not run",
        ("bench", "keras-jax", "fp16"): "not run",
        ("best", "torch", "float32"): "not reached",
        ("best", "keras-jax", "float32"): "not reached",
    }
    refusals = [row[4] for row in rows if row[5] == "not run"]
    assert all("precision fp16: the CPU cannot run it" in refusal for refusal in refusals), refusals
