"""The recipe's precision in PyTorch: autocast through accelerate, the output layer and the loss outside it, and
the float32 dots and convolutions in IEEE float32 or TF32.

Autocast computes matmuls and convolutions in the 16-bit type from float32 weights, so the weights, the optimizer's
state and BatchNorm's statistics stay float32 (runtime.common.precision states the meaning for both frameworks).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from dsl.tables import LayerRow
from runtime.common import precision as precision_rules

# accelerate's names for the recipe's precisions: tf32 is float32 to accelerate, its dots set apart (float32_dots).
ACCELERATE = {"float32": "no", "tf32": "no", "bf16": "bf16", "fp16": "fp16"}


def tf32_available(device: torch.device | str) -> bool:
    """Whether `device` computes in TF32: a CUDA GPU of compute capability 8.0 (Ampere) or later."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def ran(precision: str, device: torch.device | str) -> tuple[str, str | None]:
    """The precision that computes for `precision` on `device`, and the line saying so if it differs (tf32 without
    TF32: runtime.common.precision.ran)."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"the {device.type.upper()}"
    return precision_rules.ran(precision, tf32_available(device), name)


@contextmanager
def float32_dots(precision: str):
    """While open, PyTorch computes float32 matrix products and convolutions in TF32 when `precision` (the one that
    runs, runtime.common.precision.ran) is tf32, in IEEE float32 otherwise; then the settings are put back.

    PyTorch's defaults differ by operation: IEEE float32 matrix products, TF32 cuDNN convolutions. The legacy
    switches are used because PyTorch keeps them and its fp32_precision settings in step, while reading a legacy
    one after a newer setting raises ("a mix of the legacy and new APIs"). The matmul precision covers cuBLAS's and
    oneDNN's matrix products, cudnn.allow_tf32 cuDNN's convolutions.
    """
    tf32 = precision == "tf32"
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def runnable() -> tuple[tuple[str, ...], str]:
    """The precisions PyTorch can run here, and the device it would run them on.

    fp16 only on CUDA: on a CPU accelerate autocasts to float16 without a loss scaler, which is not fp16's meaning;
    tf32 runs everywhere: without TF32 it computes in float32 (runtime.common.precision.ran).
    """
    if not torch.cuda.is_available():
        return ("float32", "tf32", "bf16"), "the CPU"
    bf16 = ("bf16",) if torch.cuda.is_bf16_supported() else ()
    return ("float32", "tf32", *bf16, "fp16"), torch.cuda.get_device_name()


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
