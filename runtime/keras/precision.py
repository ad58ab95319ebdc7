"""The recipe's precision in Keras: the mixed dtype policies, the output layer kept in float32, and the float32
dots and convolutions in IEEE float32 or TF32 as the backend is told (runtime.keras.backends.float32_dots).

A mixed policy keeps each layer's variables float32 (weights, BatchNorm's statistics, and so the optimizer's slots)
and computes in the 16-bit type; model.compile wraps the optimizer in a LossScaleOptimizer (dynamic loss scaling)
when the model's policy is mixed_float16. runtime.common.precision states the meaning for both frameworks.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from dsl.targets import PRECISIONS
from runtime.common import precision as precision_rules
from runtime.keras import backends

# tf32 is a float32 model to Keras; its dots are the backend's setting (float32_dots).
POLICIES = {"float32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def runnable() -> tuple[tuple[str, ...], str]:
    """The precisions Keras runs here, and the device: fp16 on a GPU only, as in PyTorch (runtime.torch.precision);
    tf32 everywhere, computing in float32 without TF32 (runtime.common.precision.ran)."""
    device = backends.first_device()
    if device.startswith("cpu"):
        return ("float32", "tf32", "bf16"), "the CPU"
    return PRECISIONS, device


def ran(precision: str) -> tuple[str, str | None]:
    """The precision that computes for `precision` on this backend's device, and the line saying so if it differs."""
    device = backends.first_device()
    name = "the CPU" if device.startswith("cpu") else device
    return precision_rules.ran(precision, backends.tf32_available(), name)


def float32_dots(precision: str):
    """A context: the backend computes float32 dots and convolutions in TF32 when `precision` (the one that runs) is
    tf32, in IEEE float32 otherwise; its settings are put back on leaving."""
    return backends.float32_dots(tf32=precision == "tf32")


def build(build_model: Callable[[], keras.Model], precision: str) -> keras.Model:
    """build_model() under the precision's policy, its output layer computing in float32.

    The policy is the model's own from then on (a Keras model keeps the policy it was built under); the global
    one is put back, so later models are float32 unless built here.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        model = build_model()
    finally:
        keras.config.set_dtype_policy(previous)
    if precision in precision_rules.SIXTEEN_BIT:
        # Keras's mixed-precision guide keeps the output in float32: softmax and the loss need its range and digits.
        model.layers[-1].dtype_policy = "float32"
    return model
