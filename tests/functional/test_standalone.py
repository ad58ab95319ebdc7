"""The standalone packages (`fmnist-dsl build --standalone`) train as `fmnist-dsl train` does, without fmnist-dsl.

Every example spec but resnet (below), 1 epoch on 2,000 images, float32 on the CPU: each standalone script writes
the history and test figures the installed runtime writes. In float64, the standalone PyTorch and Keras loops take
the same 20 steps.
The standalone scripts run in processes where dsl, compilers, runtime and fmnist_dsl cannot be imported.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compilers.project import build_packages, write_packages
from tests.conftest import REPO, SPECS, TENSORFLOW_START_UP

OURS = ("dsl", "compilers", "runtime", "fmnist_dsl")
NAMES = [spec.stem for spec in SPECS]
# One epoch of resnet on 2,000 images, scored on 13,000, is minutes per framework and loop on 2 cores: its package
# is built and checked like the others (tests/golden), its model code is the package's (test_layer_vocabulary.py),
# and the loops it would run are the ones every other spec trains through here.
TRAINED = [name for name in NAMES if name != "resnet"]
TRAIN_LIMIT, HISTORY_TOL, TRAJECTORY_TOL = 2000, 1e-6, 1e-10
COMPARED = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    """Every example spec built standalone, and a folder of packages that refuse to be imported, named as ours."""
    root = tmp_path_factory.mktemp("standalone")
    write_packages(build_packages(SPECS, standalone=True), root / "packages")
    for name in OURS:
        (root / "blocked" / name).mkdir(parents=True)
        (root / "blocked" / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    return root


def run_blocked(packages: Path, code: str, timeout: int = 900, **variables: str) -> subprocess.CompletedProcess:
    """Python `code` run from the packages' folder with fmnist-dsl's packages unimportable (and `variables` set)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(packages / "blocked"), str(packages / "packages")])}
    env |= variables
    command = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(
        command, cwd=packages / "packages", env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def standalone(packages: Path, code: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """run_blocked, which must succeed."""
    result = run_blocked(packages, code, timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.parametrize("name", OURS)
def test_fmnist_dsl_cannot_be_imported_where_the_scripts_run(packages: Path, name: str) -> None:
    result = run_blocked(packages, f"import {name}")
    assert result.returncode == 1 and f"ImportError: {name} is not installed here" in result.stderr


@pytest.fixture(scope="module")
def runs(packages: Path, fashion_mnist_dir: Path) -> dict[str, Path]:
    """Per framework, the run folder holding every spec trained by the standalone scripts and by `fmnist-dsl train`.

    One process per framework trains the standalone packages one after another (each script seeds itself).
    """
    folders = {kind: packages / kind for kind in ("standalone", "runtime")}
    flags = ["--epochs", "1", "--train-limit", str(TRAIN_LIMIT), "--data-dir", str(fashion_mnist_dir)]
    for framework in ("torch", "keras"):
        standalone(
            packages,
            f"""
            import importlib
            for name in {TRAINED!r}:
                script = importlib.import_module(name + ".train_{framework}")
                script.main({flags!r} + ["--run-dir", {str(folders["standalone"])!r} + "/" + name])
            """,
        )
    # `fmnist-dsl train` for each spec, in one process so that the frameworks load once.
    trains = [
        ["train", str(spec), *flags, "--quiet", "--run-dir", str(folders["runtime"] / name)]
        for spec, name in zip(SPECS, NAMES, strict=True)
        if name in TRAINED
    ]
    code = f"from compilers.cli import main\nfor argv in {trains!r}:\n    assert main(argv) == 0, argv\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=1800, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return folders


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.needs_data
@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("name", TRAINED)
def test_standalone_scripts_train_as_the_runtime_does(runs: dict[str, Path], name: str, framework: str) -> None:
    folders = {kind: folder / name / framework for kind, folder in runs.items()}
    mine, theirs = (json.loads((folder / "history.json").read_text()) for folder in folders.values())
    assert len(mine) == len(theirs) == 1 and set(mine[0]) == set(theirs[0])
    for key in COMPARED:
        assert rel(mine[0][key], theirs[0][key]) <= HISTORY_TOL, (key, mine[0][key], theirs[0][key])
    mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in folders.values())
    assert rel(mine["test_loss"], theirs["test_loss"]) <= HISTORY_TOL, (mine["test_loss"], theirs["test_loss"])
    for key in ("test_accuracy", "test_samples", "confusion_matrix", "per_class", "class_names"):
        assert mine[key] == theirs[key], key
    last, best = ("model.pt", "best.pt") if framework == "torch" else ("model.keras", "best.keras")
    assert (folders["standalone"] / last).stat().st_size > 0 and (folders["standalone"] / best).exists()


# The first 20 batches of epoch 1 through one framework's loop, dropout off, in float64; {framework} is its name.
STEPS = """
import importlib, json
import numpy as np
name = {name!r}
shared = importlib.import_module(name + ".shared")
script = importlib.import_module(name + ".train_{framework}")
model_module = importlib.import_module(name + ".{framework}_model")
recipe = shared.Recipe.from_dict(shared.RECIPE)
splits = shared.load_splits(recipe, {data_dir!r}, {images})
"""

TORCH_STEPS = """
import torch
torch.manual_seed(0)
model = getattr(model_module, {class_name!r})().double()
script.load_initial_weights(model, shared.WEIGHTS, recipe.seed)
for module in model.modules():
    if isinstance(module, torch.nn.Dropout):
        module.p = 0.0  # each framework draws its own masks
optimizer = script.make_optimizer(model, recipe)
for group in optimizer.param_groups:
    group["lr"] = shared.scheduled_lr(recipe, 0)
accelerator = script.Accelerator()
data = script.on_device(splits.x_train.astype(np.float64), splits.y_train, accelerator.device)
loss, accuracy = script.train_epoch(model, optimizer, accelerator, data, recipe, 0)
weights = {{
    f"{{row.layer}}.{{row.variable}}": getattr(getattr(model, row.layer), shared.TORCH_NAMES[row.variable])
    .detach()
    .numpy()
    for row in shared.WEIGHTS
}}
np.savez("torch.npz", **weights)
json.dump([loss, accuracy], open("torch.json", "w"))
"""

KERAS_STEPS = """
import keras
keras.config.set_floatx("float64")
keras.config.set_dtype_policy("float64")
keras.utils.set_random_seed(0)
model = model_module.build_model()
script.load_initial_weights(model, shared.WEIGHTS, recipe.seed)
for layer in model.layers:
    if isinstance(layer, keras.layers.Dropout):
        layer.rate = 0.0  # each framework draws its own masks
script.compile_model(model, recipe)
data = script.Batches(splits.x_train.astype(np.float64), splits.y_train, recipe)
logs = model.fit(data, epochs=1, shuffle=False, verbose=0).history
weights = {{}}
for row in shared.WEIGHTS:
    value = next(v for v in model.get_layer(row.layer).weights if v.name.split("/")[-1] == row.variable)
    array = keras.ops.convert_to_numpy(value)
    weights[f"{{row.layer}}.{{row.variable}}"] = shared.to_torch_layout(array, row.flattened)
np.savez("keras.npz", **weights)
json.dump([logs["loss"][0], logs["accuracy"][0]], open("keras.json", "w"))
"""


@pytest.mark.needs_data
@pytest.mark.parametrize(("name", "class_name"), [("mlp", "Mlp"), ("cnn", "Cnn")])
def test_standalone_loops_take_the_same_float64_steps(
    packages: Path, fashion_mnist_dir: Path, name: str, class_name: str
) -> None:
    images = 20 * json.loads((REPO / "generated" / name / "spec.json").read_text())["training"]["batch_size"]
    for framework, steps in (("torch", TORCH_STEPS.format(class_name=class_name)), ("keras", KERAS_STEPS.format())):
        setup = STEPS.format(name=name, framework=framework, images=images, data_dir=str(fashion_mnist_dir))
        standalone(packages, setup + steps, timeout=600)
    folder = packages / "packages"
    (torch_loss, torch_accuracy), (keras_loss, keras_accuracy) = (
        json.loads((folder / f"{framework}.json").read_text()) for framework in ("torch", "keras")
    )
    assert rel(torch_loss, keras_loss) <= TRAJECTORY_TOL and rel(torch_accuracy, keras_accuracy) <= TRAJECTORY_TOL
    with np.load(folder / "torch.npz") as torch_weights, np.load(folder / "keras.npz") as keras_weights:
        pairs = {key: (torch_weights[key], keras_weights[key]) for key in torch_weights.files}
    floor = 1e-3 * max(float(np.max(np.abs(b))) for _, b in pairs.values())  # a bias BatchNorm follows stays ~0
    worst = {key: float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), floor) for key, (a, b) in pairs.items()}
    assert max(worst.values()) <= TRAJECTORY_TOL, worst


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_standalone_scripts_refuse_what_only_the_runtime_does_in_one_line(packages: Path, framework: str) -> None:
    script = f"from mlp import train_{framework}; train_{framework}.main(%r)"
    help_text = run_blocked(packages, script % (["--help"],)).stdout
    assert "--train-limit" in help_text and "REPLICAS" not in help_text  # refused, so not offered
    assert "features of the installed fmnist-dsl runtime" in " ".join(help_text.split())
    launcher = {"WORLD_SIZE": "2"} if framework == "torch" else {"TF_CONFIG": '{"cluster": {"worker": ["a", "b"]}}'}
    cases = [(["--replicas", "2"], {}), (["--precision", "bf16"], {}), (["--jit-compile", "on"], {}), ([], launcher)]
    for flags, variables in cases:
        result = run_blocked(packages, script % (flags,), **variables)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        lines = [line for line in result.stderr.splitlines() if not TENSORFLOW_START_UP.match(line)]  # TF's own
        refused = flags[0] if flags else next(iter(variables))
        assert len(lines) == 1 and lines[0].startswith(f"python -m mlp.train_{framework}: {refused}"), lines


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_standalone_resume_continues_the_run(packages: Path, framework: str, tmp_path: Path) -> None:
    """mlp_adam: early stopping keeps the best epoch, so --resume also restores the rule's state (Keras: Resumed)."""
    flags = ["--train-limit", "500", "--run-dir", str(tmp_path)]
    result = standalone(
        packages,
        f"""
        from mlp_adam import train_{framework}
        train_{framework}.main(["--epochs", "1", *{flags!r}])
        train_{framework}.main(["--epochs", "2", "--resume", *{flags!r}])
        """,
    )
    history = json.loads((tmp_path / framework / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert result.stdout.count(f"{framework} epoch 1:") == 1  # the second run trained epoch 2 alone
    assert history[1]["learning_rate"] < history[0]["learning_rate"]  # the cosine schedule went on from epoch 2
    assert json.loads((tmp_path / framework / "metrics.json").read_text())["test_samples"] == 10_000
