"""Installs match their extras: with one framework's extra, its commands work and the others say what to install.

A missing framework is simulated in a subprocess: a folder first on PYTHONPATH holds packages of the framework's
names whose import raises ImportError, as an absent or broken install does.
"""

import ast
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

CLI = [sys.executable, "-m", "compilers.cli"]
TINY = ["--epochs", "1", "--train-limit", "300"]
HIDDEN = {"torch": ("torch",), "keras": ("keras", "tensorflow")}  # what uninstalling each extra takes away


def without(tmp_path, extra: str) -> dict:
    """An environment in which the extra's packages raise ImportError on import."""
    fakes = tmp_path / f"without-{extra}"
    for name in HIDDEN[extra]:
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__init__.py").write_text('raise ImportError("simulated: not installed")\n')
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(fakes), str(REPO)])}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, env=env, check=False)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"


def assert_refused(result: subprocess.CompletedProcess, purpose: str, extra: str) -> None:
    """Exit 2 and one line naming the purpose and the pip command, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"fmnist-dsl: {purpose} needs ")
    assert lines[0].endswith(f'pip install "fmnist-dsl[{extra}]"')


def test_simulated_absence_is_real(tmp_path):
    """The fake packages do hide the framework: otherwise every test below would pass vacuously."""
    probe = "import importlib, sys; importlib.import_module(sys.argv[1])"
    for extra, names in HIDDEN.items():
        env = without(tmp_path, extra)
        for name in names:
            result = subprocess.run([sys.executable, "-c", probe, name], capture_output=True, text=True, env=env)
            assert "simulated: not installed" in result.stderr


@pytest.mark.needs_data
def test_torch_extra_alone_trains_evaluates_and_exports_to_onnx(tmp_path):
    env, run = without(tmp_path, "keras"), tmp_path / "run"
    assert_ok(cli(env, "train", "specs/mlp.yaml", "--framework", "torch", "--run-dir", str(run), *TINY))
    metrics = json.loads((run / "torch" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.35  # one epoch on 300 images: measured 0.40; chance is 0.1
    assert (run / "torch" / "curves.png").stat().st_size > 0  # plots come with the base install
    evaluated = cli(env, "evaluate", str(run))
    assert_ok(evaluated)
    assert "torch: reloaded model" in evaluated.stdout
    exported = cli(env, "export", str(run / "torch"), "--to", "onnx")
    assert_ok(exported)
    assert (run / "torch" / "export-onnx" / "model.onnx").exists() and exported.stdout.strip().endswith("OK")
    assert_refused(cli(env, "export", str(run / "torch"), "--to", "keras"), "export --to keras of a torch run", "keras")
    assert_refused(cli(env, "parity", "specs/mlp.yaml", "--steps", "2", "--no-real-data"), "parity", "keras")
    assert_refused(cli(env, "train", "specs/mlp.yaml", "--framework", "both", *TINY), "train --framework both", "keras")


@pytest.mark.needs_data
def test_keras_extra_alone_trains_and_evaluates(tmp_path):
    env, run = without(tmp_path, "torch"), tmp_path / "run"
    assert_ok(cli(env, "train", "specs/mlp.yaml", "--framework", "keras", "--run-dir", str(run), *TINY))
    accuracy = json.loads((run / "keras" / "metrics.json").read_text())["test_accuracy"]
    assert accuracy > 0.25, accuracy  # one epoch on 300 images: measured 0.30; chance is 0.1
    evaluated = cli(env, "evaluate", str(run))
    assert_ok(evaluated)
    assert "keras: reloaded model" in evaluated.stdout
    assert_refused(cli(env, "compare", "specs/mlp.yaml", *TINY), "compare", "torch")


def test_a_failed_plot_is_a_notice_after_the_metrics(tmp_path, monkeypatch, capsys):
    import numpy as np

    from runtime.common import rundir
    from runtime.common.data import Splits
    from tests.recipes import make_recipe

    monkeypatch.setitem(sys.modules, "runtime.common.plots", None)  # `from runtime.common import plots` now fails
    y = np.arange(10) % 10
    images = np.zeros((10, 28, 28, 1), np.float32)
    splits = Splits(images, y, images[:0], y[:0], images, y)
    history = [rundir.epoch_record(0, (1.0, 0.5), None, 0.01, 1.0)]
    info = rundir.run_info("torch", make_recipe(), "cpu", {}, "float32") | {"status": "finished", "train_samples": 10}
    results = rundir.write_results(tmp_path, history, splits, y, 0.5, info, {})
    assert results["test_accuracy"] == 1.0 and (tmp_path / "metrics.json").exists()
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "not drawn" in notice[0], notice


# Distribution names whose import name differs.
IMPORT_NAMES = {"pyyaml": "yaml", "tensorflow-cpu": "tensorflow"}
OURS = {"runtime", "dsl", "compilers", "generated"}


def _requirements(names: list[str]) -> set[str]:
    """Import names of requirement strings such as 'torch==2.14.1'."""
    dists = {re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].lower() for name in names}
    return {IMPORT_NAMES.get(dist, dist) for dist in dists}


def _third_party_imports(folder: str, module_level: bool) -> set[str]:
    """Top-level modules the folder's Python files import (only at module level, or anywhere), ours and the
    standard library's aside."""
    found = set()
    for path in (REPO / folder).glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body if module_level else ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - OURS


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


PARTS = [("runtime/common", None), ("runtime/torch", "torch"), ("runtime/keras", "keras")]


@pytest.mark.parametrize("folder,extra", PARTS)
def test_each_part_imports_only_what_its_install_brings(project, folder, extra):
    """Importing a part needs the base install and its extra; a function may import another Keras backend's
    package (jax), but never one no extra declares."""
    brought = _requirements(project["dependencies"])
    if extra:
        brought |= _requirements(project["optional-dependencies"][extra])
    assert _third_party_imports(folder, module_level=True) <= brought
    declared = brought | set().union(*map(_requirements, project["optional-dependencies"].values()))
    assert _third_party_imports(folder, module_level=False) <= declared


def test_onnx_export_comes_with_the_torch_extra_and_all_brings_every_extra(project):
    extras = project["optional-dependencies"]
    assert {"onnx", "onnxruntime"} <= _requirements(extras["torch"])
    assert "matplotlib" in _requirements(project["dependencies"])
    (all_extras,) = extras["all"]
    assert set(re.search(r"\[(.*)\]", all_extras).group(1).split(",")) == set(extras) - {"all"}
