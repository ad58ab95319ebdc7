"""No entry point crashes whatever order the frameworks load in (triton after tensorflow segfaults)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

TRAIN_STEP = (
    "import torch; model = build_torch_model(); optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9); "
    "model(torch.rand(4, 1, 28, 28)).sum().backward(); optimizer.step()"
)
SCRIPTS = {
    "tensorflow first, then a PyTorch step": (
        f"import tensorflow; from generated.mlp import build_torch_model; {TRAIN_STEP}"
    ),
    "keras model first, then a PyTorch step": (
        f"from generated.mlp import build_keras_model, build_torch_model; build_keras_model(); {TRAIN_STEP}"
    ),
    "PyTorch first, then tensorflow": (
        f"from generated.mlp import build_torch_model, build_keras_model; {TRAIN_STEP}; "
        "import tensorflow as tf; build_keras_model()(tf.zeros((1, 28, 28, 1)))"
    ),
    "the README's first look": (
        "from generated.lenet5 import build_torch_model, build_keras_model; "
        "print(build_torch_model()); build_keras_model().summary()"
    ),
}


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_script_survives(script):
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-2000:]}"


def test_summary_command_loads_both_frameworks():
    command = [sys.executable, "-m", "compilers.cli", "summary", "specs/mlp.yaml"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "272,060 + 900" in result.stdout.splitlines()[-2]
