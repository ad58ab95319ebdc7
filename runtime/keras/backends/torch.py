"""The gradient of a train-mode loss on the torch backend: autograd over the Keras variables' tensors.

On this backend a Keras variable's `.value` is a torch Parameter, so torch.autograd.grad takes them directly
(and, unlike loss.backward, leaves no `.grad` behind to accumulate into the next step).
"""

import torch


def float64_enabled() -> bool:
    return True


def value_and_grad(model, loss, images, labels):
    """See runtime.keras.backends.value_and_grad."""
    output = model(images, training=True)
    value = loss(labels, output)
    grads = torch.autograd.grad(value, [variable.value for variable in model.trainable_variables])
    return output, value, grads
