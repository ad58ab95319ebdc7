"""Parity of the PyTorch and Keras models in a 16-bit precision: eval forward and one batch's gradients.

Both models get the same float32 weights (PyTorch's, copied into Keras) and each framework's own mixed precision:
autocast with the output layer outside it (runtime.torch.precision), the mixed policy with the output layer in
float32 (runtime.keras.precision). Call `runtime.common.frameworks.guard_triton()` and import torch before Keras.

The bounds are in units of the 16-bit type's unit roundoff u (2^-8 for bf16's 8 significant bits, 2^-11 for
fp16's 11). Each framework rounds the layers' inputs, weights and outputs to the 16-bit type at its own points
(autocast rounds a Dense's or a convolution's output with its bias added, Keras's policy before and after the bias
add), so the two are two roundings of the same float32 network.
- Eval forward: max |difference| relative to the output's largest value. A few u per layer at most; measured on the
  example specs up to 2.6u (mlp: probabilities; random and real images). Bound: FORWARD_U = 8u.
- Gradients: no bound in u fits them, as they pass through every layer twice and through ReLU kinks and max-pool
  ties that rounding flips: PyTorch against Keras measured up to 113u (the cnn's conv1 kernel, rms relative), Keras's
  own bf16 gradient three times further from its float32 one than PyTorch's. So each tensor's difference is held
  against what rounding explains, each framework's own distance from its float32 gradient of the same weights,
  added: by the triangle inequality that sum bounds the difference when the float32 gradients agree (they do, to
  1e-4, runtime.interop.parity). Measured: the difference fell short of the sum on every tensor of the example
  specs (by 0.1u to 1u); GRADIENT_U = 2u leaves room for the scales, which are each side's own.
A flattening order or a BatchNorm epsilon 100 times the spec's breaks both bounds (tests/functional/test_precision.py);
an epsilon 10 times the spec's moves the figures by about 1u, below what 16 bits resolve.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np

from runtime.interop import parity, weights
from runtime.keras import precision as keras_precision
from runtime.torch import precision as torch_precision

UNIT_ROUNDOFF = {"bf16": 2.0**-8, "fp16": 2.0**-11}
FORWARD_U, GRADIENT_U = 8, 2  # bounds in units of the type's roundoff (module docstring)
RMS_FLOOR = 0.1  # rms_rel_diffs: a zero-in-exact-arithmetic gradient's scale, from the largest tensor's


@dataclass
class PrecisionReport:
    """The figures, their bounds and `ok` for one package in one 16-bit precision."""

    precision: str
    unit_roundoff: float
    forward_max_rel_diff: float = 0.0
    gradient_max_rel_diff: float = 0.0
    gradient_rel_diff: dict[str, float] = field(default_factory=dict)
    gradient_explained: dict[str, float] = field(default_factory=dict)
    gradient_unexplained: float = 0.0  # the largest rel_diff - explained over the tensors
    targets: dict[str, float] = field(default_factory=dict)
    ok: bool = False

    def judge(self) -> PrecisionReport:
        self.targets = {
            "forward": FORWARD_U * self.unit_roundoff,
            "gradient_unexplained": GRADIENT_U * self.unit_roundoff,
        }
        self.ok = (
            self.forward_max_rel_diff <= self.targets["forward"]
            and self.gradient_unexplained <= self.targets["gradient_unexplained"]
        )
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def build_pair(package, precision: str, seed: int = 0):
    """Both models of `package` in `precision` from the seed's initial weights, PyTorch's copied into Keras."""
    torch_model = parity.seeded_torch_model(package, "float32", seed)
    torch_precision.keep_output_float32(torch_model, package.LAYERS[-1])
    keras_model = keras_precision.build(package.build_keras_model, precision)
    weights.torch_to_keras(torch_model, keras_model)
    return torch_model, keras_model


@contextmanager
def autocast(precision: str):
    """PyTorch's autocast on the CPU, where the parity checks run."""
    import torch

    with torch.autocast("cpu", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision]):
        yield


def forward_diff(torch_model, keras_model, images: np.ndarray, precision: str) -> float:
    """Eval-mode max |difference| of the two models' outputs in `precision`."""
    import keras

    with autocast(precision):
        torch_out, _ = parity.torch_forward(torch_model, images)
    keras_out = keras.ops.convert_to_numpy(keras_model(images.astype("float32"), training=False))
    return parity.rel_diffs({"output": (torch_out.astype(np.float64), keras_out.astype(np.float64))})["output"]


def gradients(torch_model, keras_model, output: str, data: parity.ParityData, precision: str | None, batch: int = 64):
    """One batch's gradients (train mode, dropout off) per tensor label, (PyTorch's, Keras's), Keras's layout."""
    import keras

    images, labels = data.train_images[:batch], data.train_labels[:batch]
    parity.set_dropout_off(torch_model, keras_model)
    with autocast(precision) if precision else nullcontext():
        parity.torch_step_grads(torch_model, output, images, labels)
    _, _, grads = parity.keras_step_grads(keras_model, output, images, labels)
    by_variable = {id(v): g for v, g in zip(keras_model.trainable_variables, grads, strict=True)}
    return {
        p.label: (
            weights.torch_array(p, p.torch_tensor.grad),
            keras.ops.convert_to_numpy(by_variable[id(p.keras_variable)]).astype(np.float32),
        )
        for p in weights.tensor_pairs(torch_model, keras_model)
        if id(p.keras_variable) in by_variable
    }


def gradient_figures(package, data: parity.ParityData, precision: str) -> tuple[dict[str, float], dict[str, float]]:
    """Per tensor: PyTorch against Keras in `precision`, and how much of that the 16-bit rounding explains.

    Explained: each framework's own distance from its float32 gradient of the same weights, added (the triangle
    inequality bounds the two frameworks' difference by it when their float32 gradients agree).
    """
    torch_16, keras_16 = build_pair(package, precision, seed=0)
    torch_32, keras_32 = parity.build_pair(package, seed=0)  # the same seed: the same weights
    low = gradients(torch_16, keras_16, package.OUTPUT, data, precision)
    full = gradients(torch_32, keras_32, package.OUTPUT, data, None)
    cross = rms_rel_diffs(low)
    own_torch = rms_rel_diffs({k: (low[k][0], full[k][0]) for k in low})
    own_keras = rms_rel_diffs({k: (low[k][1], full[k][1]) for k in low})
    return cross, {k: own_torch[k] + own_keras[k] for k in low}


def rms_rel_diffs(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """rms(a - b) / max(rms(b), RMS_FLOOR * the largest rms(b) of any tensor), per tensor.

    Root mean squares, not maxima: in 16 bits a few ReLU kinks and max-pool near-ties go the other way in one
    framework, which moves single entries by their whole size and says nothing about the formulas. The floor gives
    a scale to tensors that are zero in exact arithmetic (a bias that BatchNorm follows): their values are noise.
    """
    rms = {
        label: float(np.sqrt(np.mean(np.square(b, dtype=np.float64)))) if b.size else 0.0
        for label, (_, b) in pairs.items()
    }
    floor = RMS_FLOOR * max(rms.values(), default=0.0)
    result = {}
    for label, (a, b) in pairs.items():
        diff = float(np.sqrt(np.mean(np.square(a.astype(np.float64) - b)))) if a.size else 0.0
        scale = max(rms[label], floor)
        result[label] = diff / scale if scale else diff
    return result


def check(package, precision: str = "bf16", data: parity.ParityData | None = None) -> PrecisionReport:
    """The eval forward and the gradients of `package` in `precision`, against the bounds."""
    data = data or parity.random_data(tuple(package.INPUT_SHAPE), count=64)
    report = PrecisionReport(precision, UNIT_ROUNDOFF[precision])
    torch_model, keras_model = build_pair(package, precision)
    with parity.computing_in("float32"):  # what stays float32 (the output layer, the reference) in IEEE float32
        report.forward_max_rel_diff = forward_diff(torch_model, keras_model, data.test_images, precision)
        report.gradient_rel_diff, report.gradient_explained = gradient_figures(package, data, precision)
    report.gradient_max_rel_diff = max(report.gradient_rel_diff.values(), default=0.0)
    report.gradient_unexplained = max(
        (report.gradient_rel_diff[k] - report.gradient_explained[k] for k in report.gradient_rel_diff), default=0.0
    )
    return report.judge()
