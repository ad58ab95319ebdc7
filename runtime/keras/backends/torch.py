"""The gradient of a train-mode loss on the torch backend: autograd over the Keras variables' tensors.

On this backend a Keras variable's `.value` is a torch Parameter, so torch.autograd.grad takes them directly
(and, unlike loss.backward, leaves no `.grad` behind to accumulate into the next step).
"""

import torch

from runtime.torch import precision as torch_precision


def float64_patches() -> list:
    """PyTorch's float64 CPU convolution cannot take the weight gradient of a one-filter kernel in the channels-last
    memory format Keras converts kernels to ("slow_conv2d: grad_weight must be contiguous"); keep the standard one.
    """
    from keras.src.backend.torch import nn

    return [(nn, "_maybe_convert_to_channels_last", lambda tensor: tensor)]


def first_device() -> str:
    """See runtime.keras.backends.first_device. Keras's torch backend has no keras.distribution."""
    return "cuda:0" if torch.cuda.is_available() else "cpu:0"


def tf32_available() -> bool:
    """See runtime.keras.backends.tf32_available: Keras's torch device, as PyTorch's own loop decides it."""
    return torch_precision.tf32_available(first_device())


def float32_dots(tf32: bool):
    """See runtime.keras.backends.float32_dots: PyTorch's own settings (runtime.torch.precision.float32_dots)."""
    return torch_precision.float32_dots("tf32" if tf32 else "float32")


def float64_enabled() -> bool:
    return True


def value_and_grad(model, loss, images, labels):
    """See runtime.keras.backends.value_and_grad."""
    output = model(images, training=True)
    value = loss(labels, output)
    grads = torch.autograd.grad(value, [variable.value for variable in model.trainable_variables])
    return output, value, grads
