"""`fmnist-dsl compare --seeds`: a run pair per seed, and a report whose sections and figures agree with each other."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.common.data import CLASS_NAMES
from runtime.interop.comparison import welch
from tests.conftest import REPO

TINY = ["--epochs", "1", "--train-limit", "500"]


def cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "compilers.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict, str]:
    run_dir = tmp_path_factory.mktemp("compare") / "mlp"
    result = cli("compare", "specs/mlp.yaml", *TINY, "--seeds", "0", "1", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, json.loads((run_dir / "compare.json").read_text()), (run_dir / "compare.md").read_text()


@pytest.mark.needs_data
def test_each_seed_trains_both_frameworks_into_its_own_folder(report):
    run_dir, figures, _ = report
    for seed in (0, 1):
        for framework in ("torch", "keras"):
            info = json.loads((run_dir / f"seed-{seed}" / framework / "run.json").read_text())
            assert info["seed"] == seed and info["framework"] == framework
    assert not (run_dir / "torch").exists() and [seed["seed"] for seed in figures["seeds"]] == [0, 1]
    for name in ("compare.png", "compare_classes.png"):
        assert (run_dir / name).stat().st_size > 0


@pytest.mark.needs_data
def test_agreement_figures_are_consistent(report):
    run_dir, figures, _ = report
    assert figures["test_images"] == 10000
    for seed in figures["seeds"]:
        assert 0.0 <= seed["agreement"] <= 1.0
        table = np.array(seed["disagreement_table"])
        assert table.shape == (10, 10) and np.trace(table) == 0  # a disagreement is between two different classes
        assert table.sum() == round((1 - seed["agreement"]) * 10000)
        # The official test set has 1,000 images of each class.
        assert np.sum(seed["disagreement_by_class"]) * 1000 == pytest.approx(table.sum())
        for framework, run in seed["runs"].items():
            # One epoch on 500 images: measured 0.40 / 0.46 (seed 0, PyTorch / Keras), 0.45 / 0.37 (seed 1).
            assert run["official_accuracy"] > 0.33, run["official_accuracy"]
            assert np.mean(run["per_class_accuracy"]) == pytest.approx(run["official_accuracy"])
            # mlp's recipe tests on the official images: the reloaded model gives back the run's own figure.
            recorded = json.loads((run_dir / f"seed-{seed['seed']}" / framework / "metrics.json").read_text())
            assert run["official_accuracy"] == pytest.approx(recorded["test_accuracy"], abs=1e-3)
    assert figures["agreement"] == pytest.approx(np.mean([seed["agreement"] for seed in figures["seeds"]]))
    assert sum(n for _, _, n in figures["disagreement_pairs"]) <= sum(
        np.sum(seed["disagreement_table"]) for seed in figures["seeds"]
    )


@pytest.mark.needs_data
def test_seed_noise_is_welchs_t_on_the_per_seed_accuracies(report):
    _, figures, _ = report
    noise = figures["seed_noise"]
    per_seed = {fw: [seed["runs"][fw]["official_accuracy"] for seed in figures["seeds"]] for fw in ("torch", "keras")}
    expected = welch(per_seed["torch"], per_seed["keras"])
    assert noise["statistic"] == "Welch's t" and noise["t"] == pytest.approx(expected.t)
    assert 0.0 <= noise["p"] <= 1.0 and noise["within_noise"] == (noise["p"] >= noise["alpha"])
    assert noise["gap"] == pytest.approx(np.mean(per_seed["torch"]) - np.mean(per_seed["keras"]))


@pytest.mark.needs_data
def test_the_markdown_shows_every_section_with_the_json_figures(report):
    _, figures, text = report
    sections = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert sections == ["Runs", "Agreement on the 10,000 official test images", "Parity of the two models",
                        "Seed-to-seed noise"]  # fmt: skip
    assert len(re.findall(r"^\| (torch|keras) \| 0\.\d{4} \|", text, flags=re.MULTILINE)) == 4  # 2 seeds x 2
    class_rows = [line for line in text.splitlines() if line.split(" | ")[0].lstrip("| ") in CLASS_NAMES]
    assert len(class_rows) == 10
    assert f"**{100 * figures['agreement']:.2f}%**" in text
    assert text.count("| ok |") == 5 and figures["parity"]["ok"]
    noise = figures["seed_noise"]
    verdict = "within" if noise["within_noise"] else "larger than"
    assert f"two-sided p = {noise['p']:.3f}: the gap is **{verdict} the seed-to-seed noise**" in text


def test_seed_and_seeds_together_are_refused_before_any_training(tmp_path):
    result = cli("compare", "specs/mlp.yaml", "--seed", "3", "--seeds", "0", "1", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.strip() == "fmnist-dsl: compare: give --seed or --seeds, not both"
    repeated = cli("compare", "specs/mlp.yaml", "--seeds", "0", "1", "0", "--run-dir", str(tmp_path / "run"))
    assert repeated.returncode == 2 and "0 is given twice" in repeated.stderr
    assert not (tmp_path / "run").exists()
