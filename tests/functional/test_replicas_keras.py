"""Keras data parallelism trains the 1-replica model: MirroredStrategy over 2 logical CPU devices on TensorFlow,
DataParallel over 2 host devices on jax.

Both backends split the CPU into devices only before they start one, so each backend's runs are a fresh process
(`_child`, started by `_run`). With BatchNormalization over the global batch and dropout off, losses at every step,
weights and moving statistics of 2 replicas match 1 replica to 1e-10 in float64, and match the PyTorch replicas as
the single-replica runs match each other; on TensorFlow a per-replica BatchNorm (tf.distribute's default) fails the
check (jax's DataParallel has no per-replica BatchNorm to plant).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

EPOCHS, TOLERANCE = 2, 1e-10
TORCH_KERAS_TOLERANCE = 1e-9  # the float64 PyTorch/Keras trajectory parity of tests/functional/test_parity.py


def _spec_and_data():
    from tests.functional import test_replicas as case  # the PyTorch proof's model, data and optimizers

    return case.SPEC, case.splits, case.OPTIMIZERS, case.BATCH


def _steps(package, optimizer: dict, replicas_count: int, planted: bool) -> dict:
    """model.fit on runtime.keras.training's feed of batch_order's batches; per-step losses and final weights."""
    import keras

    from runtime.keras import distributed, init, optim, training
    from runtime.keras.losses import loss_function
    from tests.recipes import make_recipe

    _, splits_of, _, batch = _spec_and_data()
    splits = splits_of()
    _one_device_again()
    with distributed.scope(replicas_count, batch):
        model = package.build_keras_model()
        init.load_initial_weights(model, package.WEIGHTS, 0)
        model.compile(optimizer=optim.from_config(optimizer), loss=loss_function(package.OUTPUT))
    if distributed.replicas_of(model) > 1 and not planted:
        distributed.synchronise_batchnorm(model)  # as training.fit does
    data = training.training_batches(splits.x_train, splits.y_train, make_recipe(batch_size=batch, seed=1))
    means = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda step, logs: means.append(logs["loss"]))
    model.fit(**training.fit_inputs(data), epochs=EPOCHS, callbacks=[training.EpochOrder(data), record], verbose=0)
    weights = {
        f"{layer.name}.{v.name}": keras.ops.convert_to_numpy(v).tolist()
        for layer in model.layers
        for v in layer.weights
    }
    replicas_used = distributed.replicas_of(model)
    return {"losses": _step_losses(means, len(means) // EPOCHS), "weights": weights, "replicas": replicas_used}


def _step_losses(means: list[float], steps: int) -> list[float]:
    """Each step's loss from Keras's running epoch means (equal batches): l_k = k m_k - (k - 1) m_(k-1)."""
    losses = []
    for epoch in range(len(means) // steps):
        epoch_means = means[epoch * steps : (epoch + 1) * steps]
        losses += [(k + 1) * m - k * (epoch_means[k - 1] if k else 0.0) for k, m in enumerate(epoch_means)]
    return losses


def _one_device_again() -> None:
    """jax's DataParallel is set for the whole process (runtime.keras.distributed): a 1-replica run after a
    2-replica one unsets it."""
    import keras

    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)


def _child(out: str, folder: str) -> None:
    """One fresh process of the backend: 2 CPU devices, float64, every trajectory this file compares."""
    import keras

    from runtime.keras import backends, distributed
    from tests.functional.test_replicas import build_replicated

    _, _, optimizers, batch = _spec_and_data()
    tensorflow = keras.backend.backend() == "tensorflow"
    if tensorflow:
        distributed.scope(2, batch)  # splits the CPU into 2 logical devices now, before TensorFlow starts one
    keras.config.set_floatx("float64")
    package = build_replicated(Path(folder))
    results = {}
    runs = ((1, False), (2, False), (2, True)) if tensorflow else ((1, False), (2, False))
    with backends.honour_float64():  # jax's BatchNorm computes in float64 too (runtime.keras.backends)
        _trajectories(package, optimizers, runs, results, folder)
    Path(out).write_text(json.dumps(results))


def _trajectories(package, optimizers: dict, runs: tuple, results: dict, folder: str) -> None:
    """Each optimizer's trajectory for each (replicas, planted) run, then training.fit with 1 and 2 replicas."""
    from tests.recipes import full_optimizer

    for name, optimizer in optimizers.items():
        for count, planted in runs:
            results[f"{name}/{count}{'/planted' if planted else ''}"] = _steps(
                package, full_optimizer(optimizer), count, planted
            )
    for count in (1, 2):
        results[f"fit/{count}"] = _fit(package, Path(folder) / f"fit{count}", count)


def _fit(package, run_dir: Path, count: int, resumed: bool | None = None) -> dict:
    """training.fit: 1 replica for 2 epochs, or 2 replicas (or `resumed`) for 1 epoch and --resume for the second."""
    import keras

    from runtime.keras import distributed, init, optim, training
    from runtime.keras.losses import loss_function
    from tests.recipes import make_recipe

    _, splits_of, optimizers, batch = _spec_and_data()
    for epochs in (1, 2) if (count > 1 if resumed is None else resumed) else (2,):
        recipe = make_recipe(optimizers["adam"], batch_size=batch, epochs=epochs, seed=1, validation_split=0.0)
        _one_device_again()
        with distributed.scope(count, batch):
            model = package.build_keras_model()
            init.load_initial_weights(model, package.WEIGHTS, 0)
            accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
            model.compile(
                optimizer=optim.from_config(recipe.optimizer), loss=loss_function(package.OUTPUT), metrics=[accuracy]
            )
        metrics = training.fit(model, splits_of(36), recipe, run_dir, resume=epochs > 1)
    history = json.loads((run_dir / "history.json").read_text())
    files = sorted(path.name for path in run_dir.iterdir())
    return {"metrics": metrics, "losses": [row["train_loss"] for row in history], "files": files}


def _run(tmp_path: Path, backend: str) -> dict:
    out = tmp_path / "keras.json"
    code = f"from tests.functional.test_replicas_keras import _child; _child({str(out)!r}, {str(tmp_path)!r})"
    env = os.environ | {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    env |= {"JAX_ENABLE_X64": "1", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module", params=["tensorflow", "jax"])
def keras_runs(request, tmp_path_factory) -> dict:
    return _run(tmp_path_factory.mktemp(f"keras-replicas-{request.param}"), request.param) | {"backend": request.param}


def assert_same_trajectory(one: dict, two: dict) -> None:
    """Losses at every step, then every weight and moving statistic, within TOLERANCE of the tensor's scale."""
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=TOLERANCE, atol=0)
    assert one["weights"].keys() == two["weights"].keys()
    for key, expected in one["weights"].items():
        expected = np.asarray(expected)
        scale = TOLERANCE * max(np.abs(expected).max(), 1e-3)
        np.testing.assert_allclose(two["weights"][key], expected, rtol=TOLERANCE, atol=scale, err_msg=key)


@pytest.mark.parametrize("name", ["sgd-nesterov", "adam"])
def test_two_mirrored_replicas_train_the_one_replica_model(keras_runs, name):
    assert len(keras_runs[f"{name}/1"]["losses"]) == EPOCHS * 4
    assert (keras_runs[f"{name}/1"]["replicas"], keras_runs[f"{name}/2"]["replicas"]) == (1, 2)
    assert_same_trajectory(keras_runs[f"{name}/1"], keras_runs[f"{name}/2"])


def test_per_replica_batchnorm_fails_the_check(keras_runs):
    if keras_runs["backend"] == "jax":
        pytest.skip("DataParallel on jax computes BatchNorm over the global batch: no per-replica one to plant")
    with pytest.raises(AssertionError):
        assert_same_trajectory(keras_runs["sgd-nesterov/1"], keras_runs["sgd-nesterov/2/planted"])


@pytest.mark.parametrize("name", ["sgd-nesterov", "adam"])
def test_torch_and_keras_replicas_agree_as_single_replicas_do(keras_runs, name, tmp_path):
    from tests.functional import test_replicas_torch as torch_side
    from tests.functional.test_replicas import build_replicated
    from tests.recipes import full_optimizer

    package = build_replicated(tmp_path / "package")
    optimizer = full_optimizer(torch_side.OPTIMIZERS[name])
    for count in (1, 2):
        torch_losses = torch_side._trajectory(package, optimizer, tmp_path / f"torch{count}", count)["losses"]
        keras_losses = np.asarray(keras_runs[f"{name}/{count}"]["losses"])
        np.testing.assert_allclose(keras_losses, torch_losses, rtol=TORCH_KERAS_TOLERANCE, err_msg=f"{count} replicas")


def test_fit_with_two_replicas_writes_one_run_and_resumes(keras_runs):
    one, two = keras_runs["fit/1"], keras_runs["fit/2"]
    assert two["files"] == one["files"]
    assert len(two["losses"]) == 2
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=TOLERANCE)
    assert two["metrics"]["test_accuracy"] == one["metrics"]["test_accuracy"]
    np.testing.assert_allclose(two["metrics"]["test_loss"], one["metrics"]["test_loss"], rtol=TOLERANCE)
