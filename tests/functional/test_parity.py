"""Numerical parity of the generated models: gradients, float64 trajectories, and the `parity` command."""

import json
import os
import subprocess
import sys
from pathlib import Path

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from compilers.project import build_and_import  # noqa: E402
from fmnist_dsl import testing  # noqa: E402
from fmnist_dsl.strategies import architectures, build_architecture  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.recipes import TF_FLOAT32_INSIDE_TOL, float32_inside_tensorflow, full_optimizer  # noqa: E402

CLI = [str(Path(sys.executable).with_name("fmnist-dsl"))]
# conv1 has no bias: a channel whose ReLU is active at every position passes its bias straight into
# BatchNorm, which cancels it, so the bias gradient is zero in exact arithmetic and rounding noise in
# practice. Adam with L2 weight decay amplifies that noise chaotically: PyTorch against itself, with
# the samples of each batch reversed, differed by 3e-4 in such a bias after 20 steps (docs/parity.md).
SMALL = {
    "name": "small_bn",
    "input": [10, 10, 1],
    "layers": [
        {
            "Conv2D": {
                "filters": 3,
                "kernel_size": 3,
                "strides": 2,
                "padding": "same",
                "activation": "relu",
                "use_bias": False,
            }
        },
        {"BatchNorm": {"momentum": 0.9}},
        {"Dropout": {"rate": 0.5}},
        {"MaxPool": {"pool_size": 2, "padding": "same"}},
        {"Flatten": {}},
        {"Dense": {"units": 8, "activation": "tanh"}},
        {"BatchNorm": {}},
        {"Dense": {"units": 10, "activation": "softmax"}},
    ],
}


@settings(max_examples=10, deadline=None)
@given(spec=architectures(10), seed=st.integers(0, 2**16))
def test_gradient_parity(spec, seed, tmp_path_factory):
    torch.manual_seed(seed)  # each example's initial weights, so a replayed example is the same example
    package = build_architecture(spec, tmp_path_factory.mktemp("grad"))
    torch_model, keras_model = parity.build_pair(package)
    data = parity.random_data(tuple(spec["input"]), count=32, seed=seed)
    assert parity.train_forward_diff(torch_model, keras_model, package.OUTPUT, data)[1] <= parity.GRADIENT_TOL
    per_param = parity.gradient_check(package, data)
    assert len(per_param) == len(keras_model.trainable_variables)
    assert max(per_param.values(), default=0.0) <= parity.GRADIENT_TOL, per_param


class WrongGradientReLU(torch.nn.Module):
    """ReLU's values with a derivative 1% too large: every gradient upstream of it is wrong by 1%."""

    def forward(self, x):
        y = torch.relu(x)
        return y.detach() + 1.01 * (y - y.detach())


def test_gradient_check_sees_a_wrong_gradient(tmp_path, monkeypatch):
    torch_grad = np.array([1.0, 2.0, -3.0])
    figures = parity.rel_diffs({"w": (torch_grad, torch_grad * 1.001), "zero_bias": (np.full(2, 1e-17), np.zeros(2))})
    assert figures["w"] == pytest.approx(1e-3, rel=1e-2)
    assert figures["zero_bias"] < 1e-12  # rounding noise on a gradient that is zero in exact arithmetic

    package = build_and_import(REPO / "specs" / "lenet5.yaml", tmp_path)
    data = parity.random_data((28, 28, 1), count=64)
    assert max(parity.gradient_check(package, data).values()) <= parity.GRADIENT_TOL
    build_torch_model = package.build_torch_model
    output_attrs = {row.name: row.output_attr for row in package.LAYERS}

    def planted():
        model = build_torch_model()
        # fc2's activation, with the same forward values: only the backward pass is wrong
        setattr(model, output_attrs["fc2"], WrongGradientReLU())
        return model

    monkeypatch.setattr(package, "build_torch_model", planted)
    figures = parity.gradient_check(package, data)
    for upstream in ("conv1.kernel", "conv2.bias", "fc1.kernel", "fc2.kernel", "fc2.bias"):
        assert figures[upstream] == pytest.approx(0.01, rel=1e-3), (upstream, figures)
    assert figures["fc3.kernel"] <= parity.GRADIENT_TOL and figures["fc3.bias"] <= parity.GRADIENT_TOL, figures


@settings(max_examples=5, deadline=None)
@given(spec=architectures(10), nesterov=st.booleans())
def test_short_trajectory_over_random_architectures(spec, nesterov, tmp_path_factory):
    torch.manual_seed(0)  # each example's initial weights, so a replayed example is the same example
    package = build_architecture(spec, tmp_path_factory.mktemp("traj"))
    optimizer = full_optimizer({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": nesterov})
    data = parity.random_data(tuple(spec["input"]), count=64)
    run = parity.trajectory(package, optimizer, data, steps=5, batch=16)
    tolerance = TF_FLOAT32_INSIDE_TOL if float32_inside_tensorflow(spec) else 1e-9
    assert run.worst_loss()[0] <= tolerance
    assert max(run.final_weights().values(), default=0.0) <= tolerance


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        {"name": "adam", "learning_rate": 0.01, "weight_decay": 1e-3},
    ],
    ids=["sgd-nesterov", "adam"],
)
@pytest.mark.parametrize("torch_seed", [0, 5])  # 5 once gave the noise-amplifying case above
def test_float64_trajectory_with_batchnorm_and_dropout(optimizer, torch_seed, tmp_path_factory):
    torch.manual_seed(torch_seed)
    package = build_architecture(SMALL, tmp_path_factory.mktemp("small"))
    data = parity.random_data((10, 10, 1), count=128)
    run = parity.trajectory(package, full_optimizer(optimizer), data, steps=20)
    assert run.losses[-1][0] < run.losses[0][0]  # it trained, so the comparison is of moving weights
    assert run.worst_loss()[0] <= 1e-9
    assert max(run.final_weights().values()) <= 1e-9


# Per-channel offsets reaching a BatchNorm as per-channel constants: through MaxPool, a valid linear Conv2D, Flatten,
# linear Dense layers, Dropout (off in the checks), or as a BatchNorm's beta. A same-padded Conv2D or an activation
# does not carry one; the offsets added after them still count.
CHAIN = {
    "name": "chain",
    "input": [8, 8, 1],
    "layers": [
        {"Conv2D": {"filters": 2, "kernel_size": 3, "padding": "same"}},
        {"MaxPool": {"pool_size": 2, "padding": "same"}},
        {"Conv2D": {"filters": 2, "kernel_size": 2}},
        {"BatchNorm": {}},
        {"Conv2D": {"filters": 2, "kernel_size": 2, "padding": "same"}},
        {"BatchNorm": {}},
        {"Conv2D": {"filters": 2, "kernel_size": 2, "activation": "relu"}},
        {"BatchNorm": {}},
        {"Flatten": {}},
        {"Dense": {"units": 4}},
        {"Dropout": {"rate": 0.5}},
        {"Dense": {"units": 4}},
        {"BatchNorm": {}},
        {"BatchNorm": {}},
        {"Dense": {"units": 10, "activation": "softmax"}},
    ],
}
CHAIN_CANCELLED = {
    "conv1.bias": "bn1",
    "conv2.bias": "bn1",
    "conv3.bias": "bn2",
    "bn3.beta": "bn4",
    "fc1.bias": "bn4",
    "fc2.bias": "bn4",
    "bn4.beta": "bn5",
}
NOISE = 1e-10  # a float64 gradient this small against the largest one is zero up to rounding


def float64_gradients(package, data: parity.ParityData) -> dict[str, float]:
    """Each trainable weight's largest |gradient| on one batch of 32, dropout off, in PyTorch in float64."""
    torch_model, keras_model = parity.build_pair(package, "float64")
    parity.set_dropout_off(torch_model, keras_model)
    images, labels = data.train_images[:32].astype(np.float64), data.train_labels[:32]
    parity.torch_step_grads(torch_model, package.OUTPUT, images, labels)
    return {
        p.label: float(p.torch_tensor.grad.abs().max())
        for p in weights.tensor_pairs(torch_model, keras_model)
        if p.torch_tensor.grad is not None
    }


def test_cancelled_offsets_are_exactly_the_weights_with_a_zero_gradient(tmp_path):
    package = build_architecture(CHAIN, tmp_path)
    assert parity.cancelled_offsets(package.build_keras_model()) == CHAIN_CANCELLED
    gradients = float64_gradients(package, parity.random_data((8, 8, 1), count=32))
    scale = max(gradients.values())
    assert {label for label, value in gradients.items() if value <= NOISE * scale} == set(CHAIN_CANCELLED), gradients


ACTIVATIONS = st.sampled_from(["relu", "none", "tanh", "none"])
PLAIN = {"MaxPool": {"padding": "same"}, "Dropout": {"rate": 0.5}, "Activation": {"name": "relu"}, "BatchNorm": {}}


def _offset_layer(draw, kinds: list[str]) -> dict:
    kind = draw(st.sampled_from(kinds))
    if kind == "Conv2D":
        args = {"filters": 2, "kernel_size": 2, "padding": draw(st.sampled_from(["same", "valid"]))}
    elif kind == "Dense":
        args = {"units": 4}
    else:
        return {kind: PLAIN[kind]}
    return {kind: args | {"activation": draw(ACTIVATIONS), "use_bias": draw(st.booleans())}}


@st.composite
def offset_chains(draw) -> dict:
    """Specs whose layers may carry an offset into a BatchNorm or not: linear or not, valid or same, biased or not."""
    feature_map = ["Conv2D", "Conv2D", "MaxPool", "BatchNorm", "BatchNorm", "Dropout", "Activation"]
    flat = ["Dense", "Dense", "BatchNorm", "BatchNorm", "Dropout"]
    layers = [_offset_layer(draw, feature_map) for _ in range(draw(st.integers(1, 3)))]
    layers += [{"Flatten": {}}, *(_offset_layer(draw, flat) for _ in range(draw(st.integers(1, 3))))]
    return {
        "name": "offsets",
        "input": [12, 12, 1],
        "layers": [*layers, {"Dense": {"units": 10, "activation": "softmax"}}],
    }


@settings(max_examples=15, deadline=None)
@given(spec=offset_chains(), seed=st.integers(0, 2**16))
def test_every_cancelled_offset_has_a_gradient_of_rounding_noise(spec, seed, tmp_path_factory):
    package = build_architecture(spec, tmp_path_factory.mktemp("offsets"))
    cancelled = parity.cancelled_offsets(package.build_keras_model())
    event(f"{len(cancelled)} cancelled")
    gradients = float64_gradients(package, parity.random_data((12, 12, 1), count=32, seed=seed))
    scale = max(gradients.values())
    assert all(gradients[label] <= NOISE * scale for label in cancelled), (cancelled, gradients)


BIAS_BEFORE_BATCHNORM = Path(__file__).parent / "specs" / "bias_before_batchnorm.yaml"
NOISY = ("conv1.bias", "bn1.moving_mean")  # the moving mean averages the batch means, the bias included


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "adam", "learning_rate": 0.001}, {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}],
    ids=["adam", "sgd-momentum"],
)
def test_a_bias_before_batchnorm_trains_alike(optimizer, tmp_path):
    package = build_and_import(BIAS_BEFORE_BATCHNORM, tmp_path)
    run = parity.trajectory(package, full_optimizer(optimizer), parity.random_data((28, 28, 1), count=128), steps=20)
    assert run.exact_zero == {"conv1.bias": "bn1"}
    assert run.worst_loss()[0] <= parity.LOSS_TOL
    assert max(run.final_weights().values()) <= parity.WEIGHT_TOL, run.final_weights()


def test_on_its_computed_gradient_adam_moves_only_that_bias_and_its_batchnorm_mean_apart(tmp_path, monkeypatch):
    package = build_and_import(BIAS_BEFORE_BATCHNORM, tmp_path)
    monkeypatch.setattr(parity, "cancelled_offsets", lambda _model: {})  # the computed gradient, rounding noise
    run = parity.trajectory(package, package.RECIPE["optimizer"], parity.random_data((28, 28, 1), count=128), steps=20)
    final = run.final_weights()
    assert final["conv1.bias"] > 1e3 * parity.WEIGHT_TOL, final
    assert all(value <= parity.WEIGHT_TOL for label, value in final.items() if label not in NOISY), final
    assert run.worst_loss()[0] <= parity.LOSS_TOL  # the bias does not change the training-mode output


def test_a_planted_bug_in_a_bias_that_matters_is_named_with_its_step(tmp_path, monkeypatch):
    spec = yaml.safe_load(BIAS_BEFORE_BATCHNORM.read_text())
    spec["layers"][0]["Conv2D"]["activation"] = "relu"  # the bias now moves the output: it is trained as computed
    spec["training"]["optimizer"] = {"name": "sgd", "learning_rate": 0.05}
    package = build_architecture(spec, tmp_path)
    assert testing.check_trajectory(package, steps=5).ok
    build_torch_model = package.build_torch_model

    def planted():
        model = build_torch_model()
        model.conv1.bias.register_hook(lambda grad: 1.01 * grad)  # PyTorch's gradient of that bias 1% too large
        return model

    monkeypatch.setattr(package, "build_torch_model", planted)
    figure = testing.check_trajectory(package, steps=5)
    assert not figure.ok and figure.worst == "conv1.bias, first over the tolerance after step 1", str(figure)


@pytest.mark.parametrize(
    "bug,worst",
    [
        ("batchnorm momentum flipped (1 - m)", "bn1.moving_variance, first over the tolerance after step 1"),
        ("Keras's own Adam", "fc1.kernel, first over the tolerance after step 1"),
    ],
)
def test_planted_bugs_still_fail_the_trajectory_of_a_bias_before_batchnorm(bug, worst, tmp_path):
    from tests.functional.backend_probe import PLANTED  # the planted bugs test_backends.py checks on every backend

    package = build_and_import(BIAS_BEFORE_BATCHNORM, tmp_path)
    plant, _ = PLANTED[bug]
    with plant(package):
        figure = testing.check_trajectory(package, steps=5)
    assert not figure.ok and figure.worst == worst, str(figure)


def test_per_layer_figures_locate_a_difference(tmp_path):
    package = build_and_import(REPO / "specs" / "lenet5.yaml", tmp_path)
    torch_model, keras_model = parity.build_pair(package)
    output_attrs = {row.name: row.output_attr for row in package.LAYERS}
    layers = [(name, output_attrs[name]) for name in ("conv1", "pool1", "fc1", "fc3")]
    images = parity.random_data((28, 28, 1), count=8).test_images
    _, before = parity.forward_diffs(torch_model, keras_model, images, layers)
    bias = keras_model.get_layer("fc1").bias
    bias.assign(bias.numpy() + 0.1)
    _, after = parity.forward_diffs(torch_model, keras_model, images, layers)
    assert max(before.values()) <= parity.FORWARD_TOL
    assert after["pool1"] <= parity.FORWARD_TOL and after["fc1"] > 0.05


def _run_cli(*args: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([*CLI, "parity", *args, "--json"], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1)
    return report


def test_cli_lenet5_is_ok():
    report = _run_cli("specs/lenet5.yaml")
    assert report["ok"] is True
    assert report["forward_max_abs_diff"] <= parity.FORWARD_TOL
    assert report["trajectory_steps"] == 100 and report["loss_max_rel_diff"] <= parity.LOSS_TOL


def test_cli_without_real_data_says_so():
    report = _run_cli("specs/mlp.yaml", "--no-real-data", "--steps", "3")
    assert report["real_data"] is False and report["forward_real_max_abs_diff"] is None
    assert report["data"].startswith("random images") and report["ok"] is True


def test_cli_passes_a_bias_before_batchnorm_and_would_name_a_weight_with_its_step(capsys):
    from runtime.commands.parity import print_report

    report = _run_cli(str(BIAS_BEFORE_BATCHNORM.relative_to(REPO)), "--no-real-data", "--steps", "20")
    assert report["ok"] is True and report["exact_zero_gradients"] == {"conv1.bias": "bn1"}
    assert report["final_weights_rel_diff"]["conv1.bias"] == 0.0 and not report["weights_first_over"]
    report["final_weights_rel_diff"]["fc1.kernel"] = report["final_weights_max_rel_diff"] = 2e-9
    report["weights_first_over"], report["ok"] = {"fc1.kernel": 7}, False
    print_report(report)
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "fc1.kernel 2.000e-09 first over the target after step 7" in lines and lines[-1] == "FAILED", lines


@pytest.mark.parametrize("source,to", [("torch", "keras"), ("torch", "onnx"), ("keras", "torch")])
def test_export_keeps_predictions(source, to, tmp_path_factory):
    from runtime.interop import export

    package = build_architecture(SMALL, tmp_path_factory.mktemp("export"))
    run_dir = tmp_path_factory.mktemp("run")
    torch_model, keras_model = parity.build_pair(package)
    if source == "torch":
        torch.save(torch_model.state_dict(), run_dir / "model.pt")
    else:
        keras_model.save(run_dir / "model.keras")
    images = parity.random_data((10, 10, 1), count=200).test_images
    figures = export.export(package, run_dir, to, run_dir / "out", images)
    assert figures["source"] == source and figures["ok"], figures
    assert json.loads((run_dir / "out" / "parity.json").read_text())["argmax_agreement"] == figures["argmax_agreement"]


def test_export_agreement_sees_a_probability_shift():
    from runtime.interop import export

    logits = np.random.default_rng(0).normal(size=(50, 10))
    assert export.agreement("logits", logits, logits + 1e-3)["ok"]  # a constant shift keeps the softmax
    assert not export.agreement("probabilities", logits, logits + 1e-3)["ok"]
