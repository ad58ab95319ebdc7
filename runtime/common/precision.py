"""The recipe's numeric precisions, with one meaning in both frameworks, and what refuses one a machine cannot run.

float32 trains in float32 throughout, and computes every dot (matrix product) and convolution in IEEE float32: each
framework is told so for the run, as on a GPU each would otherwise pick its own (XLA and TensorFlow TF32 for both,
PyTorch TF32 for convolutions only). tf32 computes the dots and convolutions in TF32 (float32's range, 10 bits of
mantissa, float32 sums) where the device has it, an NVIDIA GPU of compute capability 8.0 or later; elsewhere it
computes in float32 and says so in one line, and run.json records what ran (`precision_ran`). Everything else is
float32 in tf32 too. bf16 and fp16 compute the layers in that 16-bit type while the weights, the optimizer state and
BatchNorm's statistics stay float32, and compute the output layer and the loss in float32 (its dots in IEEE float32);
fp16 scales the loss dynamically (its 5 exponent bits underflow small gradients), bf16 keeps float32's exponent
range and needs no scaling. PyTorch gets there through autocast and its fp32_precision settings
(runtime.torch.precision), Keras through its mixed policies and its backend's settings (runtime.keras.precision).
"""

from __future__ import annotations

from dsl.targets import PRECISIONS  # noqa: F401  -- re-exported

SIXTEEN_BIT = ("bf16", "fp16")  # the precisions whose layers compute in a 16-bit type under autocast or a mixed policy


class PrecisionError(ValueError):
    """A precision the framework cannot run on this machine."""


def problem(precision: str, runnable: tuple[str, ...], device: str) -> str | None:
    """Why `precision` cannot run where only `runnable` can (`device` names the machine), or None when it can."""
    if precision in runnable:
        return None
    return f"precision {precision}: {device} cannot run it; this machine can run {', '.join(runnable)}"


def check(precision: str, runnable: tuple[str, ...], device: str) -> None:
    """Raise PrecisionError for a precision `problem` refuses."""
    message = problem(precision, runnable, device)
    if message:
        raise PrecisionError(message)


def ran(precision: str, tf32_here: bool, device: str) -> tuple[str, str | None]:
    """The precision that computes for `precision` on `device`, which has TF32 or not, and the one line saying so
    when it is not the one asked for: tf32 without TF32 computes in float32, so a spec that asks for TF32 for its
    GPU runs still trains on a laptop."""
    if precision == "tf32" and not tf32_here:
        return "float32", f"precision tf32: {device} has no TF32, so dots and convolutions compute in IEEE float32"
    return precision, None
