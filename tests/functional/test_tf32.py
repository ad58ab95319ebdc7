"""float32 computes its dots and convolutions in IEEE float32 and tf32 in TF32, in every framework, told so for the
run and told back after; without TF32 (this CPU) tf32 computes in float32, says so and records it; parity's TF32
targets hold TF32's rounding and still catch the planted bug the float32 forward target catches.

No GPU here: the TF32 branch runs with the device taken to have TF32 (a patched `tf32_available`), which checks
what each framework is asked for; that a GPU then computes in TF32 is the frameworks' part (docs/precision.md).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState

from benchmarks import tf32_parity
from compilers.project import build_and_import
from runtime.common import rundir
from runtime.common.data import Splits
from runtime.interop import parity
from runtime.keras.backends import NAMES
from runtime.torch import precision as torch_precision
from runtime.torch import training as torch_training
from tests.conftest import REPO
from tests.recipes import make_recipe

CPU_LINE = "precision tf32: the CPU has no TF32, so dots and convolutions compute in IEEE float32"
# (the recipe's precision, whether the device is taken to have TF32) -> PyTorch's settings during the run
TORCH_CASES = {
    ("float32", False): ("highest", False),
    ("tf32", False): ("highest", False),
    ("tf32", True): ("high", True),
    ("bf16", True): ("highest", False),  # the output layer and the loss, outside autocast, in IEEE float32
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("tf32")
    return {name: build_and_import(REPO / "specs" / f"{name}.yaml", out) for name in ("lenet5", "mlp_logsoftmax")}


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one state per process, its mixed precision included: each run here starts its own."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _splits() -> Splits:
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 96)
    return Splits(x[:64], y[:64], x[:0], y[:0], x[64:], y[64:])


@pytest.mark.usefixtures("fresh_accelerator_state")
@pytest.mark.parametrize(("precision", "tf32_device"), list(TORCH_CASES))
def test_torch_loop_sets_the_dots_for_the_run_and_puts_them_back(
    packages, precision, tf32_device, tmp_path, monkeypatch, capsys
):
    if tf32_device:
        monkeypatch.setattr(torch_precision, "tf32_available", lambda device: True)
    seen = set()

    def recording_loss(output, labels):
        seen.add((torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32))
        return torch.nn.functional.cross_entropy(output, labels)

    package = packages["lenet5"]
    model = package.build_torch_model()
    recipe = make_recipe({"name": "sgd", "learning_rate": 0.01}, epochs=1, batch_size=32, precision=precision)
    user = ("medium", True)  # what a library user left: bfloat16 matrix products on oneDNN, TF32 convolutions
    torch.set_float32_matmul_precision(user[0])
    torch.backends.cudnn.allow_tf32 = user[1]
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        torch_training.fit(model, optimizer, recording_loss, _splits(), recipe, tmp_path, progress=False)
        after = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    finally:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = True
    assert seen == {TORCH_CASES[precision, tf32_device]}
    assert after == user
    info = rundir.read_json(tmp_path / "run.json")
    ran = "tf32" if precision == "tf32" and tf32_device else "float32" if precision == "tf32" else precision
    assert (info["recipe"]["precision"], info["precision_ran"]) == (precision, ran)
    fell_back = precision == "tf32" and not tf32_device
    assert capsys.readouterr().err.strip().splitlines() == ([f"torch: {CPU_LINE}"] if fell_back else [])


@pytest.mark.parametrize("backend", NAMES)
def test_keras_loop_tells_its_backend_for_the_run_and_back(backend):
    """On jax the lowered train step names HIGHEST for every dot and convolution under float32, and DEFAULT (XLA's
    choice: TF32 on an Ampere or later GPU) under tf32 on a TF32 device."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "tests.functional.tf32_probe"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["backend"] == backend and found["tf32_here"] is False
    cases = found["cases"]
    assert [(c["recipe_precision"], c["precision_ran"]) for c in cases.values()] == [
        ("float32", "float32"),
        ("tf32", "float32"),
        ("tf32", "tf32"),
    ]
    assert [line for line in result.stderr.splitlines() if "TF32" in line] == [f"keras: {CPU_LINE}"]
    during = {name: case["during"] for name, case in cases.items()}
    ieee, tf32 = during["float32"], during["tf32 on a TF32 device"]
    assert during["tf32 here"] == ieee
    if backend == "jax":
        assert ieee.pop("lowered") == {"dot_general": ["HIGHEST"] * 9, "convolution": ["HIGHEST"] * 5}
        assert tf32.pop("lowered") == {"dot_general": ["DEFAULT"] * 9, "convolution": ["DEFAULT"] * 5}
        assert (ieee, tf32) == (
            {"jax_default_matmul_precision": "highest"},
            {"jax_default_matmul_precision": "default"},
        )
        user = {"jax_default_matmul_precision": "bfloat16"}
    elif backend == "tensorflow":
        assert (ieee, tf32) == ({"tensor_float_32_execution": False}, {"tensor_float_32_execution": True})
        user = {"tensor_float_32_execution": True}
    else:
        assert ieee == {"float32_matmul_precision": "highest", "cudnn_tf32": False}
        assert tf32 == {"float32_matmul_precision": "high", "cudnn_tf32": True}
        user = {"float32_matmul_precision": "medium", "cudnn_tf32": True}
    assert all(case["after"] == user for case in cases.values())


def test_parity_tf32_on_this_cpu_computes_float32_and_says_so():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "compilers.cli", "parity", "specs/mlp.yaml", "--precision", "tf32"]
    command += ["--no-real-data", "--steps", "2"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines()[1] == (
        "  float32 figures: dots and convolutions in IEEE float32 (--precision tf32: no TF32 on Keras's device; "
        "judged by tf32's targets)"
    )
    assert f"FAIL (target {parity.TARGETS_IN['tf32']['forward']:g})" not in result.stdout


def test_tf32_targets_hold_tf32_rounding_and_catch_a_wrong_flatten_order(packages):
    """PyTorch's dots and convolutions rounded to TF32 on the CPU, as a GPU's are (it reproduces the H200's figures:
    docs/parity.md): within the TF32 targets, beyond the float32 ones; the planted flatten order far beyond both."""
    targets = parity.TARGETS_IN["tf32"]
    rounded = {}
    for name, package in packages.items():
        data = parity.random_data(tuple(package.INPUT_SHAPE), count=64)
        rounded[name] = tf32_parity.figures(package, data)
        assert rounded[name]["forward"] <= targets["forward"], rounded
        assert rounded[name]["train_forward"] <= targets["train_forward"], rounded
    assert rounded["mlp_logsoftmax"]["forward"] > parity.FORWARD_TOL  # TF32 is visible: float32's target misses it
    package = packages["lenet5"]
    with tf32_parity.planted_flatten_order():
        planted = tf32_parity.figures(package, parity.random_data(tuple(package.INPUT_SHAPE), count=64))
    assert planted["forward"] > 4 * targets["forward"] and planted["train_forward"] > 4 * targets["train_forward"]
