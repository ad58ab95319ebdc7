"""The recipe's precision in PyTorch: autocast through accelerate, the output layer and the loss outside it.

Autocast computes matmuls and convolutions in the 16-bit type from float32 weights, so the weights, the optimizer's
state and BatchNorm's statistics stay float32 (runtime.common.precision states the meaning for both frameworks).
"""

from __future__ import annotations

import torch

from dsl.tables import LayerRow

# accelerate's names for the recipe's precisions.
ACCELERATE = {"float32": "no", "bf16": "bf16", "fp16": "fp16"}


def runnable() -> tuple[tuple[str, ...], str]:
    """The precisions PyTorch can run here, and the device it would run them on.

    fp16 only on CUDA: on a CPU accelerate autocasts to float16 without a loss scaler, which is not fp16's meaning.
    """
    if not torch.cuda.is_available():
        return ("float32", "bf16"), "the CPU"
    bf16 = ("bf16",) if torch.cuda.is_bf16_supported() else ()
    return ("float32", *bf16, "fp16"), torch.cuda.get_device_name()


def keep_output_float32(model: torch.nn.Module, output_layer: LayerRow) -> None:
    """Compute the output layer in float32 under autocast too: its own module and its activation's.

    `output_layer` is the package's LAYERS row of the model's last layer.
    Keras's output layer computes in float32 under a mixed policy (runtime.keras.precision), this is the same.
    The forward is wrapped in place, as accelerate wraps the model's: the state dict keeps its keys.
    """
    for attr in dict.fromkeys((output_layer.name, output_layer.output_attr)):
        module = getattr(model, attr)
        module.forward = _float32_forward(module.forward)


def _float32_forward(forward):
    def float32_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return forward(x.to(torch.promote_types(x.dtype, torch.float32)))  # halves up, float64 kept

    return float32_forward
