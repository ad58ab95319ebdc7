"""The Keras backends, and the few things whose code differs between them, one module per backend.

Keras picks its backend once per process, when it is first imported, from KERAS_BACKEND. `select` checks a name
and sets that variable; it imports nothing, so it can run before anything imports keras. `value_and_grad` is the
one computation Keras has no portable API for: the gradient of a loss in a train-mode call.
"""

import importlib
import importlib.util
import os

NAMES = ("tensorflow", "jax", "torch")
ALL = "all"  # parity's name for every backend in turn
# The module each backend needs, and the package to install for it (the project's extras).
REQUIREMENTS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu (pip install 'fmnist-dsl[keras]')"),
    "jax": ("jax", "jax (pip install 'fmnist-dsl[jax]')"),
    "torch": ("torch", "torch (pip install 'fmnist-dsl[torch]')"),
}


class BackendError(ValueError):
    """An unknown backend name, or a backend whose package is not installed."""


def check(name: str) -> str:
    """`name` if it is a Keras backend whose package is importable; BackendError saying what to do otherwise."""
    if name not in NAMES:
        raise BackendError(f"unknown Keras backend {name!r}: expected one of {', '.join(NAMES)}")
    module, install = REQUIREMENTS[name]
    if importlib.util.find_spec(module) is None:
        raise BackendError(f"the Keras backend {name!r} needs {install}")
    return name


def select(name: str, *, float64: bool = False) -> None:
    """Make `name` the Keras backend of this process and of its subprocesses; call before keras is imported.

    `float64`: let jax compute in float64 (it rounds float64 to float32 unless told before it is imported).
    """
    os.environ["KERAS_BACKEND"] = check(name)
    if float64 and name == "jax":
        os.environ["JAX_ENABLE_X64"] = "1"


def select_for_command(name: str | None, command: str) -> None:
    """A command's --keras-backend NAME (None: KERAS_BACKEND's, if set), checked and made this process's backend.

    `parity --keras-backend all` runs each backend in its own process (a process has one), so here only checks them.
    The parity command measures in float64, which jax honours only when told before it is imported.
    """
    if command == "parity" and name == ALL:
        for each in NAMES:
            check(each)
        return
    name = name or os.environ.get("KERAS_BACKEND")
    if name:
        select(name, float64=command == "parity")


def current() -> str:
    """The backend this process's Keras runs on."""
    import keras

    return keras.backend.backend()


def _module():
    return importlib.import_module(f"{__name__}.{current()}")


def computes_float64(model) -> bool:
    """Whether Keras computes every layer of a float64 `model` in float64 on this backend.

    Off TensorFlow, keras.backend.result_type maps float64 to float32, and some layers take their compute dtype
    from it (each backend module's FLOAT32_LAYERS); jax computes float64 only when JAX_ENABLE_X64 was set.
    """
    backend = _module()
    kinds = {layer.__class__.__name__ for layer in model.layers}
    return backend.float64_enabled() and not kinds & set(backend.FLOAT32_LAYERS)


def value_and_grad(model, loss, images, labels):
    """(output, loss value, gradients) of `loss(labels, model(images, training=True))`, gradients in the order of
    model.trainable_variables; the call updates the model's state (BatchNorm's moving statistics) as a fit step does.
    """
    return _module().value_and_grad(model, loss, images, labels)
