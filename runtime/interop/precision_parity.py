"""Parity of the PyTorch and Keras models in a 16-bit precision: eval forward and one batch's gradients.

Both models get the same float32 weights (PyTorch's, copied into Keras) and each framework's own mixed precision:
autocast with the output layer outside it (runtime.torch.precision), the mixed policy with the output layer in
float32 (runtime.keras.precision). Call `runtime.common.frameworks.guard_triton()` and import torch before Keras.

The bounds come from the 16-bit type's unit roundoff u (2^-8 for bf16's 8 significant bits, 2^-11 for fp16's 11).
Each framework rounds every layer's inputs, weights and outputs to the 16-bit type, at different points (PyTorch
keeps a bias add and an activation in the convolution's float32 accumulator, Keras rounds after each), so the two
are two independent roundings of the same float32 network: the outputs differ by a few u per layer, relative to
their scale. Probabilities in [0, 1] of the measured networks differed by at most 3.1u (bf16, eval forward), and
the largest per-tensor gradient by 9.5u (relative to each tensor's largest value). FORWARD_U and GRADIENT_U leave
about twice that, and stay far below what a semantic difference makes (a flattening order, a BatchNorm epsilon):
tens of u at least.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from runtime.interop import parity, weights
from runtime.keras import precision as keras_precision
from runtime.torch import precision as torch_precision

UNIT_ROUNDOFF = {"bf16": 2.0**-8, "fp16": 2.0**-11}
FORWARD_U, GRADIENT_U = 6, 20  # bounds in units of the type's roundoff (module docstring)


@dataclass
class PrecisionReport:
    """The figures, their bounds and `ok` for one package in one 16-bit precision."""

    precision: str
    unit_roundoff: float
    forward_max_abs_diff: float = 0.0
    gradient_max_rel_diff: float = 0.0
    gradient_rel_diff: dict[str, float] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    ok: bool = False

    def judge(self) -> PrecisionReport:
        self.targets = {"forward": FORWARD_U * self.unit_roundoff, "gradient": GRADIENT_U * self.unit_roundoff}
        self.ok = (
            self.forward_max_abs_diff <= self.targets["forward"]
            and self.gradient_max_rel_diff <= self.targets["gradient"]
        )
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def build_pair(package, precision: str):
    """Both models of `package` in `precision`, PyTorch's initial weights copied into Keras."""
    torch_model = package.build_torch_model().float()
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
    return float(np.max(np.abs(torch_out.astype(np.float64) - keras_out)))


def gradient_diffs(torch_model, keras_model, output: str, data: parity.ParityData, precision: str, batch: int = 64):
    """Per-tensor relative difference of one batch's gradients (train mode, dropout off) in `precision`."""
    import keras

    images, labels = data.train_images[:batch], data.train_labels[:batch]
    parity.set_dropout_off(torch_model, keras_model)
    with autocast(precision):
        parity.torch_step_grads(torch_model, output, images, labels)
    _, _, grads = parity.keras_step_grads(keras_model, output, images, labels)
    by_variable = {id(v): g for v, g in zip(keras_model.trainable_variables, grads, strict=True)}
    return parity.rel_diffs(
        {
            p.label: (
                weights.torch_array(p, p.torch_tensor.grad),
                keras.ops.convert_to_numpy(by_variable[id(p.keras_variable)]).astype(np.float32),
            )
            for p in weights.tensor_pairs(torch_model, keras_model)
            if id(p.keras_variable) in by_variable
        }
    )


def check(package, precision: str = "bf16", data: parity.ParityData | None = None) -> PrecisionReport:
    """The eval forward and the gradients of `package` in `precision`, against the bounds."""
    data = data or parity.random_data(tuple(package.INPUT_SHAPE), count=64)
    report = PrecisionReport(precision, UNIT_ROUNDOFF[precision])
    torch_model, keras_model = build_pair(package, precision)
    report.forward_max_abs_diff = forward_diff(torch_model, keras_model, data.test_images, precision)
    report.gradient_rel_diff = gradient_diffs(torch_model, keras_model, package.OUTPUT, data, precision)
    report.gradient_max_rel_diff = max(report.gradient_rel_diff.values(), default=0.0)
    return report.judge()
