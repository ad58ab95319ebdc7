"""The Keras backends, and the few things whose code differs between them, one module per backend.

Keras picks its backend once per process, when it is first imported, from KERAS_BACKEND. `select` checks a name
and sets that variable; it imports nothing, so it can run before anything imports keras. `value_and_grad` is the
one computation Keras has no portable API for: the gradient of a loss in a train-mode call.
"""

import importlib
import importlib.util
import os
from contextlib import contextmanager

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
    if not _installed(module):
        raise BackendError(f"the Keras backend {name!r} needs {install}")
    return name


def _installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (TensorFlow must not load before PyTorch's triton)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refused it, or a None entry in sys.modules
        return False


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


def backend_version() -> str:
    """The version of the package this process's Keras backend runs on."""
    return importlib.import_module(REQUIREMENTS[current()][0]).__version__


def first_device() -> str:
    """The device Keras computes on here, "gpu:0" or the like where there is one, else "cpu:0"; found without
    starting TensorFlow's devices (--replicas splits the CPU after) and on a backend without keras.distribution.
    """
    return _module().first_device()


def tf32_available() -> bool:
    """Whether the device Keras computes on here has TF32: an NVIDIA GPU of compute capability 8.0 or later."""
    return _module().tf32_available()


def float32_dots(tf32: bool):
    """A context in which this backend computes float32 dots (matrix products) and convolutions in TF32 if `tf32`,
    in IEEE float32 if not; its settings are put back on leaving. On a GPU each backend has its own default (XLA and
    TensorFlow: TF32; PyTorch: TF32 convolutions only), so runtime.common.precision's one meaning sets it always.
    """
    return _module().float32_dots(tf32)


def float64_enabled() -> bool:
    """Whether this backend can compute in float64 at all (jax: only if JAX_ENABLE_X64 was set before its import)."""
    return _module().float64_enabled()


@contextmanager
def honour_float64():
    """While open, Keras computes a float64 model in float64 on every backend; the parity checks measure in it.

    Off TensorFlow, keras.backend.result_type demotes float64 to float32 (to match jax's default), and the layers that
    take their compute dtype from it round a float64 model's values to float32: BatchNormalization on jax and torch,
    and on torch keras.ops.matmul, the product in Dense (keras-team/keras#23704). Float32 rounding, grown over a
    trajectory through ReLU kinks and max-pool ties, would hide a formula's difference; so this lifts the demotion
    (Keras's private table, of the pinned Keras), with a backend's own float64_patches(), and undoes them on leaving.
    """
    from keras.src.backend.common import dtypes

    patches = [(dtypes.BIT64_TO_BIT32_DTYPE, "float64", "float64"), *getattr(_module(), "float64_patches", list)()]
    originals = [_swap(target, name, value) for target, name, value in patches]
    try:
        yield
    finally:
        for (target, name, _), original in zip(patches, originals, strict=True):
            _swap(target, name, original)


def _swap(target, name: str, value):
    """Set a dict's key or an object's attribute to `value`; returns the old one."""
    if isinstance(target, dict):
        old, target[name] = target[name], value
    else:
        old = getattr(target, name)
        setattr(target, name, value)
    return old


def value_and_grad(model, loss, images, labels):
    """(output, loss value, gradients) of `loss(labels, model(images, training=True))`, gradients in the order of
    model.trainable_variables; the call updates the model's state (BatchNorm's moving statistics) as a fit step does.
    """
    return _module().value_and_grad(model, loss, images, labels)
