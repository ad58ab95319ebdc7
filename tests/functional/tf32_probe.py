"""The float32 dots of the Keras loop on this process's Keras backend, run by test_tf32.py in a subprocess per backend.

`python -m tests.functional.tf32_probe` with KERAS_BACKEND set trains LeNet-5 for one short epoch with
runtime.keras.training.fit in each case below, from settings a library user might have left, and prints one JSON
object: per case, the backend's settings while model.fit runs (on jax, the precision of every dot and convolution of
the lowered train step), the settings after fit returned, and run.json's precision fields.
"""

import json
import re
import tempfile
from pathlib import Path
from unittest import mock

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from compilers.project import build_and_import  # noqa: E402
from runtime.common import rundir  # noqa: E402
from runtime.common.data import Splits  # noqa: E402
from runtime.keras import backends, optim, training  # noqa: E402
from runtime.keras import precision as keras_precision  # noqa: E402
from runtime.keras.losses import loss_function  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.recipes import make_recipe  # noqa: E402

FOLDER = Path(tempfile.mkdtemp(prefix="tf32-probe-"))
# Each case: (the recipe's precision, whether the device is taken to have TF32: None for this machine's own answer).
CASES = {"float32": ("float32", None), "tf32 here": ("tf32", None), "tf32 on a TF32 device": ("tf32", True)}
# The settings a library user left before calling the loop, which it must put back.
USER_JAX = "bfloat16"
USER_TORCH = ("medium", True)


def leave_user_settings() -> None:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", USER_JAX)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(True)
    else:
        torch.set_float32_matmul_precision(USER_TORCH[0])
        torch.backends.cudnn.allow_tf32 = USER_TORCH[1]


def settings() -> dict:
    """The backend's process-wide settings of float32 dots and convolutions."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}
    if backend == "tensorflow":
        import tensorflow as tf

        return {"tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled()}
    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
    }


def lowered_precisions(model, images: np.ndarray, labels: np.ndarray) -> dict[str, list[str]]:
    """Kind of op -> the precision named by each dot_general and convolution of the model's lowered train step (jax)."""
    import jax

    model._symbolic_build(data_batch=(images, labels))  # what fit does first: the optimizer's and metrics' state
    state = model._get_jax_state(
        trainable_variables=True, non_trainable_variables=True, optimizer_variables=True, metrics_variables=True
    )
    text = jax.jit(model.train_step).lower(state, (images, labels, None)).as_text()
    found = {"dot_general": [], "convolution": []}
    for line in text.splitlines():
        for kind in found:
            if f"stablehlo.{kind}" in line:
                named = re.search(r"precision = \[(\w+)|#stablehlo<precision (\w+)>", line)
                found[kind].append(next(g for g in named.groups() if g) if named else "none")
    return found


def run_case(package, precision: str, tf32_device: bool | None, splits: Splits) -> dict:
    recipe = make_recipe({"name": "sgd", "learning_rate": 0.01}, epochs=1, batch_size=32, precision=precision)
    model = keras_precision.build(package.build_keras_model, recipe.precision)
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")  # the loop records it
    model.compile(optimizer=optim.from_config(recipe.optimizer), loss=loss_function(package.OUTPUT), metrics=[accuracy])
    seen = {}
    fit = model.fit

    def recording_fit(**kwargs):
        seen.update(settings())
        if keras.backend.backend() == "jax":
            seen["lowered"] = lowered_precisions(model, splits.x_train[:32], splits.y_train[:32])
        return fit(**kwargs)

    model.fit = recording_fit
    leave_user_settings()
    run_dir = FOLDER / precision / str(tf32_device)
    patch = mock.patch.object(backends, "tf32_available", lambda: tf32_device) if tf32_device else mock.MagicMock()
    with patch:
        training.fit(model, splits, recipe, run_dir)
    info = rundir.read_json(run_dir / "run.json")
    return {
        "during": seen,
        "after": settings(),
        "recipe_precision": info["recipe"]["precision"],
        "precision_ran": info["precision_ran"],
    }


def main() -> dict:
    package = build_and_import(REPO / "specs" / "lenet5.yaml", FOLDER / "lenet5")
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 96)
    splits = Splits(x[:64], y[:64], x[:0], y[:0], x[64:], y[64:])
    cases = {name: run_case(package, *case, splits) for name, case in CASES.items()}
    return {"backend": keras.backend.backend(), "tf32_here": backends.tf32_available(), "cases": cases}


if __name__ == "__main__":
    print(json.dumps(main()))
