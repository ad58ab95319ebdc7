"""Framework-free training helpers: the recipe, run folders, atomic JSON, schedules and stopping rules.

The PyTorch loop and the Keras callbacks both use these, so each rule has one meaning.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime import data as fmnist

JIT_CHOICES = ("auto", "on", "off")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class RunDirError(OSError):
    """The run folder cannot be created or written."""


@dataclass(frozen=True)
class Recipe:
    """A spec's training section as plain values; sections are dicts as in the spec."""

    optimizer: dict[str, Any]
    batch_size: int = 32
    epochs: int = 10
    validation_split: float = 0.0
    split: tuple[int, int, int] | None = None
    schedule: dict[str, Any] | None = None
    early_stopping: dict[str, Any] | None = None
    horizontal_flip: bool = False
    translate: int = 0
    seed: int = 0

    @property
    def augments(self) -> bool:
        """Whether training batches are flipped or shifted (both frameworks then augment on the numpy side)."""
        return bool(self.horizontal_flip or self.translate)


@dataclass(frozen=True)
class Options:
    """Command-line choices of one run, the recipe already overridden."""

    recipe: Recipe
    run_dir: Path
    data_dir: str | None
    train_limit: int | None
    resume: bool
    mixed_precision: str
    jit_compile: str = "auto"


def parse_options(argv: list[str] | None, recipe: Recipe, run_dir: str) -> Options:
    """The flags every generated training script takes; each overrides one value of the recipe."""
    parser = argparse.ArgumentParser(description="Train on Fashion-MNIST with the spec's recipe.")
    parser.add_argument("--epochs", type=int, default=recipe.epochs)
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size)
    parser.add_argument("--seed", type=int, default=recipe.seed)
    parser.add_argument("--data-dir", default=None, help="folder holding the four Fashion-MNIST .gz files")
    parser.add_argument("--run-dir", type=Path, default=Path(run_dir), help=f"output folder (default: {run_dir})")
    parser.add_argument("--train-limit", type=int, default=None, help="train on the first N training images only")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="PyTorch only")
    parser.add_argument(
        "--jit-compile",
        choices=JIT_CHOICES,
        default="auto",
        help="Keras only: compile the train step with XLA (auto: Keras's choice, off on a CPU with TensorFlow)",
    )
    args = parser.parse_args(argv)
    recipe = replace(recipe, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    return Options(
        recipe, args.run_dir, args.data_dir, args.train_limit, args.resume, args.mixed_precision, args.jit_compile
    )


def load_splits(recipe: Recipe, data_dir: str | None = None, train_limit: int | None = None) -> fmnist.Splits:
    """The recipe's train / validation / test arrays; the split is drawn from the recipe's seed."""
    data = fmnist.load_split_arrays(data_dir)
    return fmnist.make_splits(
        data,
        validation_fraction=0.0 if recipe.split else recipe.validation_split,
        counts=recipe.split,
        seed=recipe.seed,
        train_limit=train_limit,
    )


def augment(batch: np.ndarray, recipe: Recipe, epoch: int, index: int) -> np.ndarray:
    """The recipe's augmentation of one NHWC batch; the rng depends only on (seed, epoch, batch index)."""
    if not recipe.augments:
        return batch
    rng = np.random.default_rng([recipe.seed, epoch, index, 1])
    if recipe.horizontal_flip:
        batch = fmnist.random_flip_horizontal(batch, rng)
    if recipe.translate:
        batch = fmnist.random_translate(batch, rng, recipe.translate)
    return batch


def scheduled_lr(recipe: Recipe, epoch: int) -> float:
    """The learning rate of a 0-based epoch under a step or cosine schedule; the base rate otherwise."""
    base, schedule = float(recipe.optimizer["learning_rate"]), recipe.schedule or {}
    if schedule.get("name") == "step":
        return base * schedule["gamma"] ** (epoch // schedule["step_size"])
    if schedule.get("name") == "cosine":
        low = schedule["min_learning_rate"]
        return low + (base - low) * (1 + math.cos(math.pi * epoch / recipe.epochs)) / 2
    return base


@dataclass
class Plateau:
    """Keras's ReduceLROnPlateau with min_delta=0 and no cooldown, spelled out for PyTorch."""

    factor: float
    patience: int
    min_learning_rate: float
    best: float = math.inf
    wait: int = 0

    def step(self, value: float, lr: float) -> float:
        """The rate for the next epoch, given this epoch's monitored value and rate."""
        if value < self.best:
            self.best, self.wait = value, 0
            return lr
        self.wait += 1
        if self.wait >= self.patience and lr > np.float32(self.min_learning_rate):
            self.wait = 0
            return max(lr * self.factor, self.min_learning_rate)
        return lr


@dataclass
class EarlyStop:
    """Keras's EarlyStopping (min_delta=0, no baseline), spelled out for PyTorch."""

    patience: int
    best: float = math.inf
    wait: int = 0
    best_epoch: int = -1

    def step(self, value: float, epoch: int) -> tuple[bool, bool]:
        """(improved, stop) after a 0-based epoch with this monitored value."""
        self.wait += 1
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        return False, self.wait >= self.patience and epoch > 0


def check_finite(loss: float, epoch: int, framework: str) -> None:
    """Stop the run with a clear message when the loss is NaN or infinite."""
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"{framework}: training loss became {loss} in epoch {epoch + 1}; stopped. The last finite checkpoint"
            " and history are kept. Try a lower learning rate or a smaller batch size."
        )


def prepare_run_dir(path: Path) -> Path:
    """Create the run folder and prove it writable, before any training starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as error:
        raise RunDirError(f"run folder {path} is not writable: {error.strerror or error}") from error
    return path


def replace_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Let `write` fill a temporary file beside `path`, then swap it in, so readers never see half a file."""
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the suffix, which model.save and np.savez insist on
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically."""
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"))


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value in path, or default when there is no such file."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def epoch_record(epoch: int, train: tuple[float, float], val: tuple[float, float] | None, lr: float, seconds: float):
    """One history.json entry; epochs count from 1 there."""
    val_loss, val_accuracy = val if val is not None else (None, None)
    return {
        "epoch": epoch + 1,
        "train_loss": train[0],
        "train_accuracy": train[1],
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "learning_rate": lr,
        "seconds": round(seconds, 3),
    }


def run_info(framework: str, recipe: Recipe, device: str, versions: dict[str, str], **extra: Any) -> dict:
    """run.json: what it takes to reproduce the run."""
    versions = {"python": platform.python_version(), "numpy": np.__version__, **versions}
    info = {"framework": framework, "seed": recipe.seed, "device": device, "versions": versions}
    return info | {"recipe": asdict(recipe)} | extra


def copy_spec(spec_file: Path | None, run_dir: Path) -> None:
    """The package's resolved spec beside the run's results."""
    if spec_file is not None and Path(spec_file).exists():
        write_json(run_dir / "spec.json", json.loads(Path(spec_file).read_text(encoding="utf-8")))


def monitor_of(splits: fmnist.Splits) -> str:
    """val_loss when there is a validation set, else the training loss."""
    return "val_loss" if len(splits.y_val) else "train_loss"


def write_results(run_dir: Path, history: list[dict], splits: fmnist.Splits, y_pred: np.ndarray, loss: float) -> dict:
    """metrics.json and the PNG plots of a finished run; returns the metrics."""
    from runtime import metrics, plots  # matplotlib is needed only once training is over

    results = metrics.test_metrics(splits.y_test, y_pred, loss)
    write_json(run_dir / "metrics.json", results)
    plots.plot_history(history, run_dir / "curves.png")
    plots.plot_confusion(results["confusion_matrix"], run_dir / "confusion_matrix.png")
    plots.plot_predictions(splits.x_test, splits.y_test, y_pred, run_dir / "predictions.png")
    return results


def epoch_line(framework: str, row: dict) -> str:
    """One line per finished epoch."""
    val = "" if row["val_loss"] is None else f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
    return (
        f"{framework} epoch {row['epoch']}: loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}{val}"
        f"  lr {row['learning_rate']:.3g}  {row['seconds']:.1f}s"
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
