"""The generated Keras code on every Keras backend: parity with PyTorch, and the CLI's --keras-backend.

A process has one Keras backend, so each backend's checks run in one subprocess (tests/functional/backend_probe.py):
every example spec, hypothesis-drawn architectures and planted bugs, the start-up paid once per backend.
"""

import json
import os
import subprocess
import sys

import pytest

from runtime.keras.backends import NAMES
from tests.conftest import REPO

CLI = [sys.executable, "-m", "compilers.cli"]


def _env(backend: str) -> dict:
    return {**os.environ, "KERAS_BACKEND": backend, "JAX_ENABLE_X64": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.parametrize("backend", NAMES)
def test_parity_on_every_backend(backend):
    command = [sys.executable, "-m", "tests.functional.backend_probe", "specs", "drawn", "planted"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env(backend), check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(result.stdout)
    assert figures["backend"] == backend
    assert {spec.stem for spec in (REPO / "specs").glob("*.yaml")} == set(figures["specs"])
    assert {"loss", "weights"} <= set(figures["specs"]["mlp_adam"])  # the 100-step trajectory ran
    assert len(figures["planted"]) == 5  # the unchanged models and four bugs, each caught


# jax has a feed of its own (DeviceBatches); torch trains on Batches, which the default backend's run checks.
@pytest.mark.parametrize("backend", ["jax"])
def test_the_keras_feed_keeps_batch_order_on_other_backends(backend):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/functional/test_keras_feed.py"]
    command += ["-k", "not jit_compile"]  # the feeds only: XLA is TensorFlow's choice
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env(backend), check=False)
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout[-4000:]


@pytest.mark.needs_data
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_train_runs_on_the_backend_and_records_it(backend, tmp_path):
    run_dir = tmp_path / "run"
    result = _cli(
        "train", "specs/mlp.yaml", "--framework", "keras", "--keras-backend", backend, "--epochs", "1",
        "--train-limit", "512", "--run-dir", str(run_dir), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads((run_dir / "keras" / "run.json").read_text())["backend"] == backend
    accuracy = json.loads((run_dir / "keras" / "metrics.json").read_text())["test_accuracy"]
    assert accuracy > 0.36, accuracy  # one epoch on 512 images: measured 0.41 (jax), 0.47 (torch); chance is 0.1


def _cli(*args: str, backend: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env |= {"KERAS_BACKEND": backend} if backend else {}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, env=env, check=False)


def test_parity_json_names_the_backend_the_flag_chose():
    result = _cli("parity", "specs/mlp.yaml", "--no-real-data", "--steps", "2", "--json", "--keras-backend", "torch")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["keras_backend"] == "torch" and report["ok"] is True


def test_parity_all_measures_each_backend_in_one_table():
    result = _cli("parity", "specs/mlp.yaml", "--no-real-data", "--steps", "2", "--keras-backend", "all")
    assert result.returncode == 0, result.stderr[-2000:]
    header, *rows, verdicts = result.stdout.strip().splitlines()[1:]
    assert header.split() == list(NAMES) and verdicts.split() == ["OK"] * 3
    assert len(rows) == 6 and all(row.count(" ok (<=") == 3 for row in rows), result.stdout


def test_an_unknown_backend_exits_2_naming_the_choices():
    for args in (("parity", "specs/mlp.yaml"), ("train", "specs/mlp.yaml", "--framework", "keras")):
        result = _cli(*args, "--keras-backend", "theano")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            "fmnist-dsl: unknown Keras backend 'theano': expected one of tensorflow, jax, torch"
        ]
    assert "expected one of" in _cli("train", "specs/mlp.yaml", backend="theano").stderr  # as Keras reads it too


# Runs the CLI in a process where `import jax` fails, as on an install without the jax extra.
WITHOUT_JAX = """
import sys


class NoJax:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "jax":
            raise ModuleNotFoundError(f"No module named {name!r}")


sys.meta_path.insert(0, NoJax())
from compilers.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_a_missing_backend_package_exits_2_naming_what_to_install():
    command = [sys.executable, "-c", WITHOUT_JAX, "parity", "specs/mlp.yaml", "--keras-backend", "jax"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == "fmnist-dsl: the Keras backend 'jax' needs jax (pip install 'fmnist-dsl[jax]')"
