"""`model.fit` with the recipe's callbacks, fed the in-memory arrays in the same batch order as PyTorch.

Every epoch publishes model.keras (last), best.keras when it improved, optimizer.npz + state.json (for --resume) and
history.json together (runtime.common.rundir.publish).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from runtime.common import interrupt, replicas, rules, rundir, runlock
from runtime.common.constants import EVAL_BATCH
from runtime.common.data import Splits, batch_order
from runtime.common.recipe import Recipe, augment
from runtime.common.resume import check_resumable
from runtime.keras import backends, distributed
from runtime.keras import precision as keras_precision


def steps_per_execution() -> int:
    """Train steps to run per call into the compiled graph: fewer Python round trips, the same arithmetic.

    One on Keras's torch backend (it refuses more) and on a TensorFlow cluster, where the multi-step loop's check
    for a next batch, a collective inside a while loop's condition, fails to run.
    """
    return 1 if keras.backend.backend() == "torch" or distributed.cluster_size() > 1 else 32


def jit_compile(choice: str) -> bool | str:
    """model.compile's jit_compile for a --jit-compile choice (dsl.targets.JIT_CHOICES).

    Opt-in, because XLA's gain depends on the model and the CPU: on one 2-core machine it made LeNet-5's step faster
    and the MLP's and the cnn's slower, on another (AVX-512) LeNet-5's slower too (README, the benchmark).
    """
    return {"auto": "auto", "on": True, "off": False}[choice]


class Batches(keras.utils.PyDataset):
    """Training batches cut by index from numpy arrays, augmented, in runtime.common.data.batch_order's order.

    The portable feed: any Keras backend, and augmentation. On TensorFlow without augmentation, GraphBatches is used.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, recipe: Recipe, replica_count: int = 1) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y, self.recipe, self.replicas = x, y, recipe, replica_count
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the order of a 0-based epoch; batch i of it depends on nothing else."""
        self.epoch = epoch
        order = batch_order(len(self.y), self.recipe.batch_size, epoch, self.recipe.seed)
        self.order = replicas.trim(order, self.replicas)  # equal parts for the replicas

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int):
        idx = self.order[index]
        return augment(self.x[idx], self.recipe, self.epoch, index), self.y[idx]


class DeviceBatches(Batches):
    """The same batches as Batches, gathered on the jax device from the arrays, put there once: no copy of the
    images from the host at each step, only of the batch's indices.

    jax without augmentation (augment works on numpy arrays) and on one device (under DataParallel, Keras lays each
    host batch out over the replicas' devices itself).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, recipe: Recipe) -> None:
        import jax

        super().__init__(x, y, recipe)
        self.x, self.y = jax.device_put(x), jax.device_put(y)
        self.gather = jax.jit(lambda images, labels, index: (images[index], labels[index]))

    def __getitem__(self, index: int):
        return self.gather(self.x, self.y, self.order[index])


class GraphBatches:
    """The same batches as Batches, gathered by index inside the tf.data graph from tensors held once in memory.

    The epoch's order lives in a variable that set_epoch fills before Keras opens the epoch's iterator.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, recipe: Recipe, replica_count: int = 1) -> None:
        import tensorflow as tf

        self.size, self.recipe, self.replicas = len(y), recipe, replica_count
        trained = replicas.trained_count(len(y), recipe.batch_size, replica_count)  # the last batch trimmed
        self.order = tf.Variable(tf.zeros(trained, tf.int64), trainable=False, name="batch_order")
        images, labels, size = tf.constant(x), tf.constant(y), recipe.batch_size

        def gather(step):
            index = self.order[step * size : (step + 1) * size]
            return tf.gather(images, index), tf.gather(labels, index)

        steps = math.ceil(trained / size)
        self.dataset = tf.data.Dataset.range(steps).map(gather).prefetch(tf.data.AUTOTUNE)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the order of a 0-based epoch."""
        order = batch_order(self.size, self.recipe.batch_size, epoch, self.recipe.seed)
        self.order.assign(np.concatenate(replicas.trim(order, self.replicas)))


def training_batches(x: np.ndarray, y: np.ndarray, recipe: Recipe, replica_count: int = 1) -> Batches | GraphBatches:
    """The fastest feed that keeps batch_order's batches: in-graph on TensorFlow, on the device on jax, a PyDataset
    of host arrays otherwise."""
    backend = keras.backend.backend()
    if backend == "tensorflow" and not recipe.augments:
        return GraphBatches(x, y, recipe, replica_count)
    if backend == "jax" and not recipe.augments and replica_count == 1:
        return DeviceBatches(x, y, recipe)
    return Batches(x, y, recipe, replica_count)


def fit_inputs(data: Batches | GraphBatches) -> dict:
    """model.fit's data arguments. shuffle=False: by default fit reorders a PyDataset's batches."""
    return {"x": data.dataset if isinstance(data, GraphBatches) else data, "shuffle": False}


def _lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class EpochOrder(keras.callbacks.Callback):
    """Gives the feed each epoch's batch order before Keras opens the epoch's iterator."""

    def __init__(self, data: Batches | GraphBatches) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.data.set_epoch(epoch)


class Recorder(keras.callbacks.Callback):
    """After each epoch: checks the loss, writes history, checkpoints and state, and prints the epoch's line."""

    def __init__(self, run_dir: Path, history: list[dict], best: float, watched: list, quiet: bool = False) -> None:
        super().__init__()
        self.run_dir, self.history, self.best, self.watched, self.quiet = run_dir, history, best, watched, quiet

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.lr, self.start = _lr(self.model), time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.end = time.perf_counter()  # the last one marks the end of training, before validation

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = self.end - self.start
        rules.check_finite(float(logs["loss"]), epoch, "keras")
        val = (float(logs["val_loss"]), float(logs["val_accuracy"])) if "val_loss" in logs else None
        self.history.append(
            rundir.epoch_record(epoch, (float(logs["loss"]), float(logs["accuracy"])), val, self.lr, seconds)
        )
        monitored = (val or (logs["loss"],))[0]
        files = {}
        if monitored < self.best:
            self.best = monitored
            files["best.keras"] = self.model.save
        variables = self.model.optimizer.variables
        optimizer_state = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
        state = {"epoch": epoch + 1, "best": self.best, "stopped": bool(self.model.stop_training)}
        state["callbacks"] = [{"wait": c.wait, "best": float(c.best)} for c in self.watched]
        files |= {"model.keras": self.model.save, "optimizer.npz": lambda path: np.savez(path, **optimizer_state)}
        files |= {"state.json": rundir.json_file(state), "history.json": rundir.json_file(self.history)}
        with interrupt.held():  # Ctrl-C waits for the epoch's files
            rundir.publish(self.run_dir, files)
        if not self.quiet:
            print(rundir.epoch_line("keras", self.history[-1]), flush=True)


class RestoreState(keras.callbacks.Callback):
    """On --resume, gives early stopping and plateau their counters back after their on_train_begin resets."""

    def __init__(self, watched: list, states: list[dict], best_weights) -> None:
        super().__init__()
        self.watched, self.states, self.best_weights = watched, states, best_weights

    def on_train_begin(self, logs=None) -> None:
        for callback, state in zip(self.watched, self.states, strict=True):
            callback.wait, callback.best = state["wait"], state["best"]
            if isinstance(callback, keras.callbacks.EarlyStopping):
                callback.best_weights = self.best_weights


def _rules(recipe: Recipe, monitor: str) -> list:
    """The recipe's schedule and early stopping as Keras callbacks, with PyTorch's meaning (min_delta=0)."""
    schedule, stop = recipe.schedule or {}, recipe.early_stopping
    callbacks = []
    if schedule.get("name") in ("step", "cosine"):
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: rules.scheduled_lr(recipe, epoch)))
    if schedule.get("name") == "reduce_on_plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor,
                schedule["factor"],
                schedule["patience"],
                mode="min",
                min_delta=0,
                min_lr=schedule["min_learning_rate"],
            )
        )
    if stop:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor, patience=stop["patience"], mode="min", restore_best_weights=stop["restore_best_weights"]
            )
        )
    return callbacks


def _read_state(path: Path, rules_watched: int) -> dict:
    """state.json, checked to hold what Recorder writes there."""
    state = rundir.read_json(path)
    with rundir.reading(path):
        callbacks = [{"wait": int(c["wait"]), "best": float(c["best"])} for c in state["callbacks"]]
        if len(callbacks) != rules_watched:
            raise ValueError(f"{len(callbacks)} schedule/stopping states, the recipe has {rules_watched}")
        saved = {"epoch": int(state["epoch"]), "best": float(state["best"]), "stopped": bool(state["stopped"])}
    return saved | {"callbacks": callbacks}


def _load_weights(model: keras.Model, path: Path) -> None:
    """A .keras file's weight arrays into the spec's own model.

    load_weights reads only the archive's weights, never its config, so no layer (a Lambda's Python function, say)
    is rebuilt from the run folder: safe_mode is not even needed.
    """
    with rundir.reading(path), warnings.catch_warnings():
        # The optimizer's slots come from optimizer.npz once it is built; Keras's warning that it skipped them misleads.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def _resume(model: keras.Model, run_dir: Path, rules_watched: int) -> tuple[dict, list, list | None]:
    """Load the last checkpoint's weights and optimizer slots; returns the saved state, history and best weights."""
    state = _read_state(run_dir / "state.json", rules_watched)
    history = rundir.read_history(run_dir / "history.json")
    if len(history) < state["epoch"]:
        raise rundir.RunFileError(f"{run_dir / 'history.json'}: missing or shorter than state.json's {state['epoch']}")
    best_weights = None
    if (run_dir / "best.keras").exists():
        _load_weights(model, run_dir / "best.keras")
        best_weights = model.get_weights()
    _load_weights(model, run_dir / "model.keras")
    model.optimizer.build(model.trainable_variables)
    path = run_dir / "optimizer.npz"
    with rundir.reading(path), np.load(path, allow_pickle=False) as saved:  # numpy arrays only, no pickled objects
        if len(saved.files) != len(model.optimizer.variables):
            raise ValueError(f"{len(saved.files)} arrays for {len(model.optimizer.variables)} optimizer variables")
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(saved[f"v{i}"])
    return state, history[: state["epoch"]], best_weights


def fit(model: keras.Model, splits: Splits, recipe: Recipe, run_dir: Path, *, spec_file=None, resume=False) -> dict:
    """Train a compiled model, checkpoint every epoch, evaluate on the test set; returns metrics.json's content.

    The run folder is locked for the whole run (runtime.common.runlock); --resume continues only the same model and
    recipe. A model built in runtime.keras.distributed.scope trains on that many replicas, each global batch split
    into equal parts, BatchNorm over the global batch. On a TensorFlow cluster (TF_CONFIG) every process runs this;
    the chief writes the run folder, the others return {}. Float32 dots and convolutions compute in TF32 under tf32
    on a device that has it, in IEEE float32 otherwise (runtime.keras.precision); run.json records what ran.
    """
    run_dir = rundir.prepare_run_dir(Path(run_dir))
    if not distributed.is_chief():
        # The chief's steps, saves included (a save may read values across the cluster), into files thrown away.
        with tempfile.TemporaryDirectory(prefix="fmnist-dsl-worker-") as scratch:
            return _fit(model, splits, recipe, run_dir, spec_file, resume, out_dir=Path(scratch))
    with runlock.hold(run_dir):
        rundir.recover(run_dir)
        return _fit(model, splits, recipe, run_dir, spec_file, resume, out_dir=run_dir)


def _fit(model, splits: Splits, recipe: Recipe, run_dir: Path, spec_file, resume: bool, out_dir: Path) -> dict:
    """fit's run, resuming from run_dir (a folder it holds, or the chief does) and writing into out_dir; {} from a
    cluster's other worker, which stops once the test set's collective scoring is done."""
    writer = out_dir == run_dir
    has_val = len(splits.y_val) > 0
    monitor = "val_loss" if has_val else "loss"
    replica_count = distributed.replicas_of(model)
    if replica_count > 1:
        distributed.synchronise_batchnorm(model)
    data = training_batches(splits.x_train, splits.y_train, recipe, replica_count)
    schedule_and_stop = _rules(recipe, monitor)
    watched = [c for c in schedule_and_stop if not isinstance(c, keras.callbacks.LearningRateScheduler)]
    history, state, extra = [], {"epoch": 0, "best": math.inf, "stopped": False}, []
    if resume and (run_dir / "state.json").exists():
        check_resumable(run_dir, "keras", recipe, spec_file, len(splits.y_train))
        with distributed.model_scope(model):  # the optimizer's slots live on the replicas' devices
            state, history, best_weights = _resume(model, run_dir, len(watched))
        extra = [RestoreState(watched, state["callbacks"], best_weights)]
    rundir.copy_spec(spec_file, out_dir)
    precision, notice = keras_precision.ran(recipe.precision)
    if notice and writer:
        print(f"keras: {notice}", file=sys.stderr, flush=True)
    backend = keras.backend.backend()
    versions = {"keras": keras.__version__, backend: backends.backend_version()}
    info = rundir.run_info("keras", recipe, backends.first_device(), versions, precision, backend=backend)
    rundir.write_json(
        out_dir / "run.json", rundir.run_record(info | {"status": "training", "train_samples": len(splits.y_train)})
    )
    recorder = Recorder(out_dir, history, state["best"], watched, quiet=not writer)
    # Every step traced or run from here computes its float32 dots as `precision` says (jax writes it into the ops).
    with keras_precision.float32_dots(precision):
        if not state["stopped"] and state["epoch"] < recipe.epochs:
            model.fit(
                **fit_inputs(data),
                epochs=recipe.epochs,
                initial_epoch=state["epoch"],
                validation_data=(splits.x_val, splits.y_val) if has_val else None,
                validation_batch_size=EVAL_BATCH,
                # The recorder last: it saves the rules' updated state.
                callbacks=[EpochOrder(data), *schedule_and_stop, *extra, recorder],
                verbose=1 if sys.stderr.isatty() and writer else 0,
            )
        test = model.evaluate(splits.x_test, splits.y_test, batch_size=EVAL_BATCH, verbose=0, return_dict=True)
        predicted = np.argmax(model.predict(splits.x_test, batch_size=EVAL_BATCH, verbose=0), axis=1)
    # model.keras again: early stopping may have restored the best weights after the last epoch's was published.
    final = {"model.keras": model.save}
    if not writer:  # the chief's save too, into the scratch folder: a save may read values across the cluster
        rundir.publish(out_dir, final)
        return {}
    info |= {"status": "finished", "epochs_run": len(history), "peak_rss_mb": rundir.peak_rss_mb()}
    return rundir.write_results(out_dir, history, splits, predicted, float(test["loss"]), info, final)
