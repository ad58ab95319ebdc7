"""The recipe's precision in Keras: the mixed dtype policies, the output layer kept in float32.

A mixed policy keeps each layer's variables float32 (weights, BatchNorm's statistics, and so the optimizer's slots)
and computes in the 16-bit type; model.compile wraps the optimizer in a LossScaleOptimizer (dynamic loss scaling)
when the model's policy is mixed_float16. runtime.common.precision states the meaning for both frameworks.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from dsl.targets import PRECISIONS
from runtime.keras import backends

POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def runnable() -> tuple[tuple[str, ...], str]:
    """The precisions Keras runs here, and the device: fp16 on a GPU only, as in PyTorch (runtime.torch.precision)."""
    device = backends.first_device()
    if device.startswith("cpu"):
        return ("float32", "bf16"), "the CPU"
    return PRECISIONS, device


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
    if precision != "float32":
        # Keras's mixed-precision guide keeps the output in float32: softmax and the loss need its range and digits.
        model.layers[-1].dtype_policy = "float32"
    return model
