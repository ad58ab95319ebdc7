"""The gradient of a train-mode loss on the jax backend: jax.value_and_grad of the model's stateless call.

jax arrays are immutable, so the call returns the new non-trainable values (BatchNorm's moving statistics,
dropout's seed) and they are assigned back, leaving the model as a stateful train-mode call would. The function
is compiled once per model and loss, as Keras's own jax trainer compiles its train step: jax's eager dispatch of
each small op is slow. So a model's Python attributes (a Dropout's rate) count as they were at the first call.
"""

import weakref
from contextlib import contextmanager

import jax

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def first_device() -> str:
    """See runtime.keras.backends.first_device."""
    device = jax.devices()[0]
    return f"{device.platform}:{device.id}"


def tf32_available() -> bool:
    """See runtime.keras.backends.tf32_available: jax's first device, a CUDA GPU of compute capability >= 8.0."""
    device = jax.devices()[0]
    capability = str(getattr(device, "compute_capability", ""))  # "9.0" on CUDA; ROCm names an architecture
    return device.platform == "gpu" and capability.replace(".", "", 1).isdigit() and float(capability) >= 8.0


@contextmanager
def float32_dots(tf32: bool):
    """See runtime.keras.backends.float32_dots: jax's default precision of dots and convolutions, which it writes into
    each op as it traces (so a train step compiled inside holds it). HIGHEST is IEEE float32; DEFAULT leaves XLA its
    own choice, TF32 on an Ampere or later GPU. The process-wide setting, not the thread-local context, so that
    whatever thread Keras traces in sees it."""
    before = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", "default" if tf32 else "highest")
    try:
        yield
    finally:
        jax.config.update("jax_default_matmul_precision", before)


def float64_enabled() -> bool:
    """JAX_ENABLE_X64 was set before jax was imported; otherwise jax rounds float64 arrays to float32."""
    return bool(jax.config.jax_enable_x64)


def _compiled(model, loss):
    """jit(value_and_grad) of the train-mode loss of `model`, made on first use."""
    per_loss = _COMPILED.setdefault(model, {})
    if loss.__name__ not in per_loss:
        weak = weakref.ref(model)  # a strong reference from the value would keep the key, and the model, alive

        def compute(trainable, frozen, images, labels):
            output, new_frozen = weak().stateless_call(trainable, frozen, images, training=True)
            return loss(labels, output), (output, new_frozen)

        per_loss[loss.__name__] = jax.jit(jax.value_and_grad(compute, has_aux=True))
    return per_loss[loss.__name__]


def value_and_grad(model, loss, images, labels):
    """See runtime.keras.backends.value_and_grad."""
    trainable = [variable.value for variable in model.trainable_variables]
    frozen = [variable.value for variable in model.non_trainable_variables]
    (value, (output, new_frozen)), grads = _compiled(model, loss)(trainable, frozen, images, labels)
    for variable, new in zip(model.non_trainable_variables, new_frozen, strict=True):
        variable.assign(new)
    return output, value, grads
