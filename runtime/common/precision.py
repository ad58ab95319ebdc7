"""The recipe's numeric precisions, with one meaning in both frameworks, and what refuses one a machine cannot run.

float32 trains in float32 throughout. bf16 and fp16 compute the layers in that 16-bit type while the weights, the
optimizer state and BatchNorm's statistics stay float32, and compute the output layer and the loss in float32;
fp16 scales the loss dynamically (its 5 exponent bits underflow small gradients), bf16 keeps float32's exponent
range and needs no scaling. PyTorch gets there through autocast (runtime.torch.precision), Keras through its
mixed policies (runtime.keras.precision).
"""

from __future__ import annotations

from dsl.targets import PRECISIONS  # noqa: F401  -- re-exported


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
