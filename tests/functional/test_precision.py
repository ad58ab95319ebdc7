"""bf16 and fp16 with one meaning in both loops: parity within the 16-bit bounds, float32 where it must stay."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

from compilers.project import build_and_import
from runtime.common import rundir
from runtime.common.data import Splits
from runtime.common.layouts import flat_to_keras_order
from runtime.interop import precision_parity, weights
from runtime.keras import precision as keras_precision
from runtime.torch import optim as torch_optim
from runtime.torch import precision as torch_precision
from runtime.torch import training as torch_training
from runtime.torch.losses import loss_function
from tests.conftest import REPO
from tests.recipes import make_recipe


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("precision")
    return {name: build_and_import(REPO / "specs" / f"{name}.yaml", out) for name in ("mlp", "lenet5")}


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_bf16_parity_within_the_rounding_bounds(packages, name):
    report = precision_parity.check(packages[name], "bf16")
    assert report.ok, report.to_dict()
    # The 16-bit path really ran: its own rounding moves the gradients by more than u (float32's, by about 1e-6).
    # The forward difference cannot show it: where both frameworks call oneDNN's bf16 kernels (AVX-512 BF16 CPUs)
    # they round alike and agree to float32's precision.
    assert max(report.gradient_explained.values()) > report.unit_roundoff, report.to_dict()


def test_planted_flatten_order_breaks_bf16_parity(packages, monkeypatch):
    """The transfer forgetting that Keras flattens HWC and PyTorch CHW: fc1's rows in the wrong order."""
    honest = weights.torch_to_keras

    def planted(torch_model, keras_model):
        honest(torch_model, keras_model)
        kernel = keras_model.get_layer("fc1").kernel
        hwc = keras.ops.convert_to_numpy(kernel)
        kernel.assign(flat_to_keras_order(hwc.T, (5, 5, 16)).T)  # a second reordering: now scrambled

    monkeypatch.setattr(weights, "torch_to_keras", planted)
    report = precision_parity.check(packages["lenet5"], "bf16")
    assert not report.ok
    assert report.forward_max_rel_diff > report.targets["forward"]
    assert report.gradient_unexplained > report.targets["gradient_unexplained"], report.to_dict()


def test_planted_batchnorm_epsilon_breaks_bf16_gradients(packages, monkeypatch):
    """Keras's BatchNorm with 100 times the spec's epsilon (0.1 for 1e-3): forward and gradients move.

    Ten times (1e-2) moves them by about 1u only, within the bounds: the float32 parity is what sees that.
    """
    honest = keras_precision.build

    def planted(build_model, precision):
        model = honest(build_model, precision)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.epsilon = 0.1
        return model

    monkeypatch.setattr(keras_precision, "build", planted)
    report = precision_parity.check(packages["mlp"], "bf16")
    assert report.forward_max_rel_diff > report.targets["forward"]
    assert report.gradient_unexplained > report.targets["gradient_unexplained"], report.to_dict()


def test_torch_output_layer_computes_in_float32_under_autocast(packages):
    model = packages["lenet5"].build_torch_model()
    torch_precision.keep_output_float32(model, packages["lenet5"].LAYERS[-1])
    seen = {}
    model.fc2.register_forward_hook(lambda _m, _i, out: seen.__setitem__("fc2", out.dtype))
    model.fc3.register_forward_hook(lambda _m, _i, out: seen.__setitem__("fc3", out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(4, 1, 28, 28))
    assert seen == {"fc2": torch.bfloat16, "fc3": torch.float32} and out.dtype == torch.float32
    assert set(model.state_dict()) == set(packages["lenet5"].build_torch_model().state_dict())


def test_keras_policies_keep_variables_and_output_float32(packages):
    model = keras_precision.build(packages["mlp"].build_keras_model, "fp16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    assert {v.dtype for v in model.weights} == {"float32"}  # BatchNorm's moving statistics included
    assert [layer.compute_dtype for layer in model.layers][-2:] == ["float16", "float32"]
    model.compile(optimizer=keras.optimizers.SGD(), loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # fp16: dynamic loss scaling
    bf16 = keras_precision.build(packages["mlp"].build_keras_model, "bf16")
    bf16.compile(optimizer=keras.optimizers.SGD(), loss="sparse_categorical_crossentropy")
    assert not isinstance(bf16.optimizer, keras.optimizers.LossScaleOptimizer)
    assert bf16(np.zeros((2, 28, 28, 1), "float32")).dtype == "float32"


def test_torch_bf16_run_learns_with_float32_weights(packages, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((400, 28, 28, 1), dtype=np.float32) * 0.1
    y = np.arange(400) % 10
    x[np.arange(400), y, y, 0] = 1.0  # a learnable pixel per class
    splits = Splits(x[:300], y[:300], x[300:], y[300:], x[300:], y[300:])
    package = packages["mlp"]
    model = package.build_torch_model()
    recipe = make_recipe({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}, epochs=2, precision="bf16")
    metrics = torch_training.fit(  # the loss and optimizer the generated script passes (train_torch.py)
        model,
        torch_optim.from_config(model.parameters(), recipe.optimizer),
        loss_function(package.OUTPUT),
        splits,
        recipe,
        tmp_path,
        output_layer=package.LAYERS[-1],
        progress=False,
    )
    assert metrics["test_accuracy"] >= 0.95, metrics  # measured 1.00: one pixel tells each class
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {b.dtype for n, b in model.named_buffers() if "running" in n} == {torch.float32}
    assert rundir.read_json(tmp_path / "run.json")["recipe"]["precision"] == "bf16"


def test_one_process_trains_in_one_precision_then_another(packages, tmp_path):
    """A notebook's next cell, or a test session: accelerate's process-wide state from a bf16 run does not refuse a
    float32 run after it, nor the other way round."""
    rng = np.random.default_rng(0)
    splits = Splits(*(rng.random((64, 28, 28, 1), dtype=np.float32), np.arange(64) % 10) * 3)
    package = packages["mlp"]
    for run, precision in enumerate(("bf16", "float32", "bf16")):
        model = package.build_torch_model()
        recipe = make_recipe(epochs=1, batch_size=32, precision=precision)
        optimizer = torch_optim.from_config(model.parameters(), recipe.optimizer)
        run_dir = tmp_path / str(run)
        torch_training.fit(model, optimizer, loss_function(package.OUTPUT), splits, recipe, run_dir, progress=False)
        assert rundir.read_json(run_dir / "run.json")["recipe"]["precision"] == precision


def test_fp16_on_this_cpu_exits_2_with_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("fp16 runs on a CUDA device")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "generated.mlp.train_torch", "--precision", "fp16", "--run-dir", str(run_dir)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "train_torch.py: precision fp16: the CPU cannot run it; this machine can run float32, tf32, bf16"
    ]
    assert not run_dir.exists()


def test_train_refuses_fp16_on_this_cpu_in_one_line_before_making_a_run_folder(tmp_path):
    """The CLI asks both frameworks before it makes their run folders; the line is alone on stderr, TensorFlow's
    start-up lines hidden as the CLI hides them (the test session's TF_CPP_MIN_LOG_LEVEL is not passed on)."""
    if torch.cuda.is_available():
        pytest.skip("fp16 runs on a CUDA device")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "compilers.cli", "train", "specs/mlp.yaml", "--framework", "both"]
    command += ["--precision", "fp16", "--run-dir", str(run_dir)]
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fmnist-dsl: precision fp16: the CPU cannot run it; this machine can run float32, tf32, bf16"
    ]
    assert not run_dir.exists()
