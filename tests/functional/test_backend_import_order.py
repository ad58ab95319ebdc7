"""torch, tensorflow and jax in one process, imported in any order, and Keras on each backend beside PyTorch.

Importing triton after tensorflow segfaults (runtime/common/frameworks.py); each script runs in its own process.
"""

import subprocess
import sys

import pytest

from runtime.keras.backends import NAMES
from tests.conftest import REPO

TORCH_STEP = (
    "import torch; model = build_torch_model(); optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9); "
    "model(torch.rand(4, 1, 28, 28)).sum().backward(); optimizer.step()"
)
KERAS_STEP = (
    "import keras, numpy as np; keras_model = build_keras_model(); "
    "keras_model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy'); "
    "keras_model.fit(np.zeros((8, 28, 28, 1), 'float32'), np.zeros(8, 'int64'), epochs=1, verbose=0)"
)
BUILDERS = "from generated.mlp import build_keras_model, build_torch_model"
# The three rotations put each framework first, and each of the six ordered pairs in some script.
ORDERS = [("tensorflow", "jax", "torch"), ("jax", "torch", "tensorflow"), ("torch", "tensorflow", "jax")]


def _run(script: str, backend: str = "tensorflow") -> None:
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(order) for order in ORDERS])
def test_the_three_frameworks_in_any_order(order):
    _run(f"import {', '.join(order)}; {BUILDERS}; {TORCH_STEP}; {KERAS_STEP}")


@pytest.mark.parametrize("backend", NAMES)
def test_keras_on_each_backend_then_pytorch(backend):
    _run(f"{BUILDERS}; {KERAS_STEP}; {TORCH_STEP}; assert keras.backend.backend() == {backend!r}", backend)
