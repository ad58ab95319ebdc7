"""Parity checks on the Keras backend of this process, run by test_backends.py in a subprocess per backend.

`python -m tests.functional.backend_probe [specs] [drawn] [planted]` with KERAS_BACKEND (and JAX_ENABLE_X64=1) set; it
asserts, and prints one JSON object of the figures it measured. A process has one Keras backend, so each
backend needs its own process; one process checks everything for its backend, paying its start-up once.
"""

import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402,F401  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from compilers.project import build_and_import  # noqa: E402
from fmnist_dsl.strategies import architectures, build_architecture  # noqa: E402
from runtime.commands.summary import summary_rows  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402
from runtime.keras import backends, optim  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.recipes import TF_FLOAT32_INSIDE_TOL, float32_inside_tensorflow  # noqa: E402

TRAJECTORY_SPECS = ("lenet5", "mlp_adam")  # SGD without BatchNorm; Adam with BatchNorm and Dropout
# best's layers are all in cnn and mlp too, resnet's in test_layer_semantics.py's residual networks; their float64
# gradients on three backends would cost minutes of CI.
STRUCTURE_ONLY = ("best", "resnet")
DRAWN = 3
FOLDER = Path(tempfile.mkdtemp(prefix="backend-probe-"))


def structure_and_forward(package) -> dict:
    """Shapes and parameter counts equal (the DSL's, PyTorch's, Keras's); eval forward both ways after a transfer."""
    for row in summary_rows(package):
        assert row["dsl"] == row["torch"] == row["keras"], row
    noise = parity.random_data(tuple(package.INPUT_SHAPE), count=32, seed=1).test_images
    torch_model, keras_model = parity.build_pair(package)
    to_keras, _ = parity.forward_diffs(torch_model, keras_model, noise, [])
    to_torch = parity.keras_to_torch_forward_diff(package, noise)
    assert max(to_keras, to_torch) <= parity.FORWARD_TOL, (to_keras, to_torch)
    return {"forward_to_keras": to_keras, "forward_to_torch": to_torch}


def gradients(package, data) -> float:
    torch_model, keras_model = parity.build_pair(package)
    assert parity.train_forward_diff(torch_model, keras_model, package.OUTPUT, data)[1] <= parity.GRADIENT_TOL
    worst = max(parity.gradient_check(package, data).values(), default=0.0)
    assert worst <= parity.GRADIENT_TOL, worst
    return worst


def trajectory(package, optimizer: dict, data, steps: int, tolerance: float | None = None) -> dict:
    """The float64 trajectory's worst loss and final weight figures, each within its target (or `tolerance`)."""
    run = parity.trajectory(package, optimizer, data, steps=steps, batch=16)
    loss, final = run.worst_loss()[0], max(run.final_weights().values(), default=0.0)
    assert loss <= (tolerance or parity.LOSS_TOL) and final <= (tolerance or parity.WEIGHT_TOL), (loss, final)
    return {"loss": loss, "weights": final}


def check_specs() -> dict:
    """Every example spec: structure, forward, gradients; a 100-step trajectory of two with their own optimizers."""
    figures = {}
    for spec in SPECS:
        package = build_and_import(spec, FOLDER / spec.stem)
        data = parity.random_data(tuple(package.INPUT_SHAPE), count=128)
        figures[spec.stem] = structure_and_forward(package)
        if spec.stem not in STRUCTURE_ONLY:
            figures[spec.stem] |= {"gradient": gradients(package, data)}
        if spec.stem in TRAJECTORY_SPECS:
            figures[spec.stem] |= trajectory(package, package.RECIPE["optimizer"], data, steps=100)
    return figures


def check_drawn() -> dict:
    """Hypothesis-drawn architectures (every layer kind): the same checks, a 10-step SGD trajectory each."""
    worst = {"forward": 0.0, "gradient": 0.0, "loss": 0.0, "weights": 0.0}
    optimizer = {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}

    @settings(
        max_examples=DRAWN, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(spec=architectures(classes=10))
    def check(spec):
        package = build_architecture(spec, Path(tempfile.mkdtemp(dir=FOLDER)))
        data = parity.random_data(tuple(spec["input"]), count=48)
        worst["forward"] = max(worst["forward"], *structure_and_forward(package).values())
        worst["gradient"] = max(worst["gradient"], gradients(package, data))
        rounded = backends.current() == "tensorflow" and float32_inside_tensorflow(spec)
        tolerance = TF_FLOAT32_INSIDE_TOL if rounded else parity.LOSS_TOL
        for name, value in trajectory(package, optimizer, data, steps=10, tolerance=tolerance).items():
            worst[name] = max(worst[name], value)

    check()
    return worst


PLANTED_SPEC = {
    "name": "planted",
    "input": [8, 8, 1],
    "layers": [
        {"Conv2D": {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"BatchNorm": {"momentum": 0.9}},
        {"Flatten": {}},
        {"Dense": {"units": 6, "activation": "tanh"}},
        {"BatchNorm": {}},
        {"Dense": {"units": 10, "activation": "softmax"}},
    ],
}
ADAM = {"name": "adam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0}


def planted_figures(package, data) -> dict[str, float]:
    """The figures a planted bug should move: eval forward, gradients, the trajectory's final weights."""
    torch_model, keras_model = parity.build_pair(package)
    forward, _ = parity.forward_diffs(torch_model, keras_model, data.test_images[:32], [])
    gradient = max(parity.gradient_check(package, data).values())
    final = max(parity.trajectory(package, ADAM, data, steps=5, batch=16).final_weights().values())
    return {"forward": forward, "gradient": gradient, "weights": final}


def _batchnorms(package, **changes):
    """package.build_keras_model patched: each BatchNormalization's attribute `name` set to `change(old value)`."""
    build = package.build_keras_model

    def changed():
        model = build()
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                for name, change in changes.items():
                    setattr(layer, name, change(getattr(layer, name)))
        return model

    return mock.patch.object(package, "build_keras_model", changed)


def _keras_adam(config: dict):
    """Keras's Adam: epsilon added to sqrt(v) before the bias correction of the step, not after as in torch.optim."""
    return keras.optimizers.Adam(config["learning_rate"], config["beta_1"], config["beta_2"], config["epsilon"])


# Bug -> (a patch planting it in a package's parity check, the figure that must then exceed its target)
PLANTED = {
    "batchnorm momentum flipped (1 - m)": (lambda package: _batchnorms(package, momentum=lambda m: 1 - m), "weights"),
    "batchnorm epsilon 1e-5, not 1e-3": (lambda package: _batchnorms(package, epsilon=lambda _: 1e-5), "gradient"),
    "flatten order (rows not reordered)": (
        lambda _: mock.patch.object(weights, "flattened_maps", lambda _model: {}),
        "forward",
    ),
    "Keras's own Adam": (lambda _: mock.patch.object(optim, "from_config", _keras_adam), "weights"),
}
TARGETS = {"forward": parity.FORWARD_TOL, "gradient": parity.GRADIENT_TOL, "weights": parity.WEIGHT_TOL}


def check_planted() -> dict:
    """The unchanged models within every target; each planted bug outside the target of the figure it moves."""
    package = build_architecture(PLANTED_SPEC, Path(tempfile.mkdtemp(dir=FOLDER)))
    data = parity.random_data((8, 8, 1), count=64)
    figures = {"none": planted_figures(package, data)}
    assert all(figures["none"][name] <= target for name, target in TARGETS.items()), figures
    for bug, (plant, figure) in PLANTED.items():
        with plant(package):
            figures[bug] = planted_figures(package, data)
        assert figures[bug][figure] > TARGETS[figure], (bug, figures[bug])
    return figures


if __name__ == "__main__":
    checks = {"specs": check_specs, "drawn": check_drawn, "planted": check_planted}
    result = {"backend": keras.backend.backend()} | {name: checks[name]() for name in sys.argv[1:]}
    print(json.dumps(result))
