"""Run folders: atomic writes, history rows, run.json, the results of a finished run."""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import resource
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from runtime.common import data as fmnist
from runtime.common.recipe import Recipe


class RunDirError(OSError):
    """The run folder cannot be created or written, or a file in it cannot be used (an OSError: the CLI reports it)."""


class RunFileError(RunDirError):
    """A file of a run folder is truncated, corrupt, or not what this program writes there."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An error's message on one line, cut at `limit` characters (frameworks' load errors run to paragraphs)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn any failure to read `path` back, or to use what it holds, into one line naming the file.

    Frameworks' loaders fail by how a file is broken (RuntimeError, EOFError, KeyError, ValueError, BadZipFile,
    UnpicklingError, ...), so this catches them all; keep the block to the load itself.
    """
    try:
        yield
    except RunDirError:
        raise
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))  # what torch's weights_only unpickler would not build
        raise RunFileError(
            f"{path}: refused: it holds Python objects besides tensors and plain values"
            f"{f' ({found[1]})' if found else ''}, and loading those could run code"
        ) from error
    except Exception as error:
        detail = f"it has no {error.args[0]!r}" if isinstance(error, KeyError) and error.args else one_line(error)
        raise RunFileError(
            f"{path}: cannot be read back (truncated, corrupt, or not from this model): {detail}"
        ) from error


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
    # The name keeps the suffix, which model.save and np.savez insist on.
    tmp = path.with_name(f".tmp-{path.name}")
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
    """The JSON value in path, or default when there is no such file; a broken file is a RunFileError."""
    if not path.exists():
        return default
    with reading(path):
        return json.loads(path.read_text(encoding="utf-8"))


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


def write_results(run_dir: Path, history: list[dict], splits: fmnist.Splits, y_pred: np.ndarray, loss: float) -> dict:
    """metrics.json and the PNG plots of a finished run; returns the metrics."""
    from runtime.common import metrics

    results = metrics.test_metrics(splits.y_test, y_pred, loss)
    write_json(run_dir / "metrics.json", results)
    with plotting("curves.png, confusion_matrix.png and predictions.png"):
        from runtime.common import plots  # matplotlib is needed only once training is over

        plots.plot_history(history, run_dir / "curves.png")
        plots.plot_confusion(results["confusion_matrix"], run_dir / "confusion_matrix.png")
        plots.plot_predictions(splits.x_test, splits.y_test, y_pred, run_dir / "predictions.png")
    return results


@contextmanager
def plotting(figures: str) -> Iterator[None]:
    """Draw figures in the block; a failure (matplotlib missing or broken, say) is a one-line notice, not a crash
    after the training it would report on."""
    try:
        yield
    except Exception as error:
        print(f"{figures} not drawn: {one_line(error)}", file=sys.stderr)


def epoch_line(framework: str, row: dict) -> str:
    """One line per finished epoch."""
    val = "" if row["val_loss"] is None else f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
    return (
        f"{framework} epoch {row['epoch']}: loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}{val}"
        f"  lr {row['learning_rate']:.3g}  {row['seconds']:.1f}s"
    )


def peak_rss_mb() -> float:
    """This program's peak resident memory so far, in MiB.

    Linux's VmHWM starts afresh when a process execs a new program; getrusage's ru_maxrss does not, so a training
    process started by a parent that had loaded both frameworks would report the parent's peak.
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
