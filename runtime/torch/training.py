"""The PyTorch loop: accelerate places the model and data, tqdm shows progress, batches are cut by index.

Every epoch publishes model.pt (last), best.pt when it improved, checkpoint.pt (for --resume) and history.json
together (runtime.common.rundir.publish).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm

from runtime.common import interrupt, rules, rundir, runlock
from runtime.common import replicas as replica_rules
from runtime.common.constants import EVAL_BATCH
from runtime.common.data import Splits, batch_order
from runtime.common.layouts import to_channels_first
from runtime.common.precision import SIXTEEN_BIT
from runtime.common.precision import check as check_precision
from runtime.common.recipe import Recipe, augment
from runtime.common.resume import check_resumable
from runtime.torch import distributed
from runtime.torch import precision as torch_precision
from runtime.torch.step import TrainStep, graphs_possible


def seed_everything(seed: int) -> None:
    """Seed PyTorch's generators: initial weights and dropout masks."""
    torch.manual_seed(seed)


def _saved(obj):
    """A writer of obj with torch.save, for rundir.publish."""
    return lambda path: torch.save(obj, path)


def _resume(model: torch.nn.Module, optimizer: torch.optim.Optimizer, run_dir: Path):
    """Load checkpoint.pt into model and optimizer; returns (tracker, plateau, lr, stopped, history so far).

    weights_only: the checkpoint holds tensors and plain values only, so unpickling it can build nothing else, and a
    planted one runs no code.
    """
    path = run_dir / "checkpoint.pt"
    with rundir.reading(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        tracker = rules.EarlyStop(**state["tracker"])
        plateau = rules.Plateau(**state["plateau"]) if state["plateau"] else None
        lr, stopped, epoch = float(state["learning_rate"]), bool(state["stopped"]), int(state["epoch"])
    history = rundir.read_history(run_dir / "history.json")
    if len(history) < epoch:
        raise rundir.RunFileError(f"{run_dir / 'history.json'}: missing or shorter than {path.name}'s {epoch} epochs")
    return tracker, plateau, lr, stopped, history[:epoch]


def _unwrap(model, accelerator: Accelerator) -> torch.nn.Module:
    return accelerator.unwrap_model(model)


class _Data:
    """One split in memory: NHWC numpy for augmentation, NCHW tensors on the device otherwise."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device) -> None:
        self.x, self.y = x, y
        self.x_t = torch.from_numpy(to_channels_first(x)).to(device)
        self.y_t = torch.from_numpy(y).to(device)

    def device_batches(self, batches: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
        """The epoch's index batches on the device, copied in one go.

        A copy from host memory waits for the GPU to finish its queue: one per batch kept host and GPU taking turns.
        """
        whole = torch.from_numpy(np.concatenate(batches)).to(self.y_t.device)
        return torch.split(whole, [len(idx) for idx in batches])

    def batch(self, idx: np.ndarray, index_t: torch.Tensor, recipe: Recipe, epoch: int, index: int):
        """Inputs and labels of batch `idx` (`index_t` on the device), augmented on the numpy side as Keras is."""
        labels = self.y_t[index_t]
        if not recipe.augments:
            return self.x_t[index_t], labels
        images = to_channels_first(augment(self.x[idx], recipe, epoch, index))
        return torch.from_numpy(images).to(self.x_t.device), labels


def evaluate(model, data: _Data, loss_fn, accelerator: Accelerator) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, predicted classes) in eval mode."""
    model.eval()
    total, predictions = 0.0, []
    with torch.no_grad(), accelerator.autocast():
        for start in range(0, len(data.y), EVAL_BATCH):
            out = model(data.x_t[start : start + EVAL_BATCH])
            out = out.to(torch.promote_types(out.dtype, torch.float32))  # halves up, float64 kept
            labels = data.y_t[start : start + EVAL_BATCH]
            total += loss_fn(out, labels).item() * len(labels)
            predictions.append(out.argmax(1).cpu().numpy())
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    return total / max(len(data.y), 1), float(np.mean(predicted == data.y)), predicted


def _train_epoch(step: TrainStep, data: _Data, recipe: Recipe, epoch: int, progress: bool):
    """One pass over the shuffled training set; returns (mean loss, accuracy) as Keras reports them."""
    step.model.train()
    step.reset_totals()
    rank, count = step.accelerator.process_index, step.accelerator.num_processes
    global_batches = replica_rules.trim(batch_order(len(data.y), recipe.batch_size, epoch, recipe.seed), count)
    batches = [replica_rules.share(idx, rank, count) for idx in global_batches]  # this process's part of each
    # disable=None: no bar where stderr is no terminal (a log, a pipe), as the Keras loop does.
    disable = None if progress else True
    bar = tqdm(batches, desc=f"torch epoch {epoch + 1}/{recipe.epochs}", disable=disable, leave=False)
    for index, (idx, index_t) in enumerate(zip(bar, data.device_batches(batches))):
        step(*data.batch(idx, index_t, recipe, epoch, index))
    trained = sum(len(idx) for idx in global_batches)
    return distributed.summed(step.total_loss).item() / trained, distributed.summed(step.correct).item() / trained


def _trackers(recipe: Recipe) -> tuple[rules.EarlyStop, rules.Plateau | None]:
    """The best-model tracker (early stopping's, or one that never stops) and the plateau rule."""
    patience = (recipe.early_stopping or {}).get("patience", 10**9)
    schedule = recipe.schedule or {}
    plateau = None
    if schedule.get("name") == "reduce_on_plateau":
        plateau = rules.Plateau(schedule["factor"], schedule["patience"], schedule["min_learning_rate"])
    return rules.EarlyStop(patience), plateau


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn,
    splits: Splits,
    recipe: Recipe,
    run_dir: Path,
    *,
    spec_file: Path | None = None,
    resume: bool = False,
    output_layer: tuple | None = None,
    progress: bool = True,
    cuda_graphs: bool = True,
    replicas: int = 1,
) -> dict:
    """Train, checkpoint every epoch, evaluate on the test set; returns metrics.json's content.

    On one CUDA device in float32, full batches replay a captured CUDA graph (runtime.torch.step). The run folder
    is locked for the whole run (runtime.common.runlock); --resume continues only the same model and recipe.
    With replicas > 1, that many processes train on equal parts of each global batch (runtime.torch.distributed);
    the first writes the run folder, and the trained weights (model.pt) and the optimizer's state (checkpoint.pt) are
    then loaded back into `model` and `optimizer`, so the caller holds what one process would have left it.
    Started by an outside launcher (torchrun, accelerate launch: WORLD_SIZE set), this process is one replica of
    the launcher's; the first of them writes the run folder, the others return {}.
    In bf16 or fp16 (recipe.precision) the layers compute under autocast, `output_layer` (the package's LAYERS row
    of the last layer) and the loss in float32 (runtime.torch.precision). Float32 dots and convolutions compute in
    TF32 under tf32 on a device that has it, in IEEE float32 otherwise, for the run (runtime.torch.precision); run.json
    records the precision that ran.
    """
    if replica_rules.launched() == 1:
        distributed.check(replicas, recipe.batch_size)
    else:  # started by torchrun or the like: its count, not this machine's cores, is what to check
        replica_rules.check_launcher(replicas, recipe.batch_size)
    check_precision(recipe.precision, *torch_precision.runnable())
    if recipe.precision in SIXTEEN_BIT and output_layer is not None:
        torch_precision.keep_output_float32(model, output_layer)
    run_dir = rundir.prepare_run_dir(Path(run_dir))
    # Under an outside launcher each process runs this; the first holds the lock for all, as the command's parent does.
    with runlock.hold(run_dir) if replica_rules.is_first_launched() else contextlib.nullcontext():
        if replica_rules.is_first_launched():
            rundir.recover(run_dir)
        options = (spec_file, resume, progress, cuda_graphs)
        if replicas == 1:
            return _fit(model, optimizer, loss_fn, splits, recipe, run_dir, *options)
        distributed.launch(lambda: _fit(model, optimizer, loss_fn, splits, recipe, run_dir, *options), replicas)
        _load_trained(model, optimizer, run_dir)
        return rundir.read_json(run_dir / "metrics.json")


def _load_trained(model: torch.nn.Module, optimizer: torch.optim.Optimizer, run_dir: Path) -> None:
    """The replicas' trained weights and optimizer state, from the run folder they wrote, into the caller's objects."""
    with rundir.reading(run_dir / "model.pt"), rundir.reading(run_dir / "checkpoint.pt"):
        model.load_state_dict(torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True))
        checkpoint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(checkpoint["optimizer"])


def _accelerator(precision: str) -> Accelerator:
    """An Accelerator computing in `precision` (runtime.common.precision's meaning).

    accelerate keeps one state per process and refuses another precision once it is set, so a second run in one
    process (a notebook's next cell, a test session) in another precision would fail: a state an earlier run left in
    one process is cleared first. Among replicas the state belongs to their process group, and one precision is kept.
    """
    mixed = torch_precision.ACCELERATE[precision]
    left = AcceleratorState._shared_state.get("_mixed_precision")  # noqa: SLF001  -- accelerate exposes no reader
    if left not in (None, mixed) and not torch.distributed.is_initialized():
        AcceleratorState._reset_state()  # noqa: SLF001
    return Accelerator(mixed_precision=mixed)


def _fit(model, optimizer, loss_fn, splits, recipe, run_dir, spec_file, resume, progress, cuda_graphs):
    """fit's run, in a run folder it holds."""
    accelerator = _accelerator(recipe.precision)
    precision, notice = torch_precision.ran(recipe.precision, accelerator.device)
    if notice and accelerator.is_main_process:
        print(f"torch: {notice}", file=sys.stderr, flush=True)
    # After accelerate's set-up, which may set PyTorch's TF32 switches itself (under torch.compile).
    with torch_precision.float32_dots(precision):
        options = (spec_file, resume, progress, cuda_graphs)
        return _train(model, optimizer, loss_fn, splits, recipe, run_dir, accelerator, precision, *options)


def _train(model, optimizer, loss_fn, splits, recipe, run_dir, accelerator, precision, *options):
    """_fit's training, evaluation and files, with the accelerator made and `precision` the one that computes."""
    spec_file, resume, progress, cuda_graphs = options
    writer = accelerator.is_main_process  # one writer of the run folder among the replicas
    if accelerator.num_processes > 1:
        model = distributed.global_batchnorm(model)
    tracker, plateau = _trackers(recipe)
    history, lr, stopped = [], float(recipe.optimizer["learning_rate"]), False
    if resume and (run_dir / "checkpoint.pt").exists():
        check_resumable(run_dir, "torch", recipe, spec_file, len(splits.y_train))
        tracker, plateau, lr, stopped, history = _resume(model, optimizer, run_dir)
    model, optimizer = accelerator.prepare(_channels_last(model), optimizer)
    train, val, test = (_Data(x, y, accelerator.device) for x, y in _arrays(splits))
    use_graph = cuda_graphs and graphs_possible(accelerator)  # one process, so a full batch is recipe.batch_size
    step = TrainStep(model, optimizer, loss_fn, accelerator, recipe.batch_size, use_graph)
    info = rundir.run_info("torch", recipe, str(accelerator.device), {"torch": torch.__version__}, precision)
    if writer:
        rundir.copy_spec(spec_file, run_dir)
        rundir.write_json(
            run_dir / "run.json", rundir.run_record(info | {"status": "training", "train_samples": len(train.y)})
        )
    for epoch in range(len(history), 0 if stopped else recipe.epochs):
        if plateau is None:
            lr = rules.scheduled_lr(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        train_result = _train_epoch(step, train, recipe, epoch, progress)
        seconds = time.perf_counter() - start
        rules.check_finite(train_result[0], epoch, "torch")
        # Every replica scores the whole split on its own copy of the weights: each image counted once, no collective.
        val_result = evaluate(_unwrap(model, accelerator), val, loss_fn, accelerator)[:2] if len(val.y) else None
        history.append(rundir.epoch_record(epoch, train_result, val_result, lr, seconds))
        monitored = (val_result or train_result)[0]
        improved, stopped = tracker.step(monitored, epoch)
        if plateau is not None:
            lr = plateau.step(monitored, lr)
        with interrupt.held():  # Ctrl-C waits for the epoch's files, so they agree
            if writer:
                _write_epoch(run_dir, model, optimizer, accelerator, history, tracker, plateau, improved, lr, stopped)
        if progress and writer:
            print(rundir.epoch_line("torch", history[-1]), flush=True)
        if stopped:
            break
    accelerator.wait_for_everyone()  # best.pt is whole before any replica reads it
    final = {}
    if (recipe.early_stopping or {}).get("restore_best_weights") and (run_dir / "best.pt").exists():
        with rundir.reading(run_dir / "best.pt"):
            _unwrap(model, accelerator).load_state_dict(torch.load(run_dir / "best.pt", weights_only=True))
        final["model.pt"] = _saved(_unwrap(model, accelerator).state_dict())
    test_loss, _, predicted = evaluate(_unwrap(model, accelerator), test, loss_fn, accelerator)
    if not writer:
        return {}
    info |= {"status": "finished", "epochs_run": len(history), "peak_rss_mb": rundir.peak_rss_mb()}
    return rundir.write_results(run_dir, history, splits, predicted, test_loss, info, final)


def _write_epoch(run_dir, model, optimizer, accelerator, history, tracker, plateau, improved, lr, stopped) -> None:
    """The epoch's files, published together: model.pt, best.pt when it improved, checkpoint.pt and history.json."""
    state_dict = _unwrap(model, accelerator).state_dict()
    checkpoint = {"epoch": len(history), "model": state_dict, "optimizer": optimizer.state_dict()}
    checkpoint |= {"tracker": asdict(tracker), "plateau": plateau and asdict(plateau)}
    # Tensors and plain values only, so _resume can load it with weights_only.
    checkpoint |= {"learning_rate": float(lr), "stopped": bool(stopped)}
    files = {"best.pt": _saved(state_dict)} if improved else {}
    files |= {"model.pt": _saved(state_dict), "checkpoint.pt": _saved(checkpoint)}
    rundir.publish(run_dir, files | {"history.json": rundir.json_file(history)})


def _channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """A convolutional model with its weights in channels-last memory: the same values, a faster layout for oneDNN.

    Measured on CPU, a bare training step: LeNet-5 at batch 128 15-21% faster, the cnn at batch 64 35% (the
    benchmark's LeNet-5 ratio did not move). The one-channel input is the same in either layout, and the
    convolutions then keep their activations channels-last.
    """
    if any(isinstance(layer, torch.nn.Conv2d) for layer in model.modules()):
        return model.to(memory_format=torch.channels_last)
    return model


def _arrays(splits: Splits):
    return ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test))
