"""Run folders: atomic writes, history rows, run.json, the results of a finished run."""

from __future__ import annotations

import json
import os
import platform
import resource
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from runtime.common import data as fmnist
from runtime.common.recipe import Recipe


class RunDirError(OSError):
    """The run folder cannot be created or written."""


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
    from runtime.common import metrics, plots  # matplotlib is needed only once training is over

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
