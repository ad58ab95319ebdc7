"""Run folders: atomic writes, epochs published whole, history rows, run.json, the results of a finished run.

An epoch writes several files (the model, the checkpoint or optimizer state, history.json, best.* when it improved).
`publish` makes them replace their predecessors together or not at all, with a small redo log:

1. every file is written into RUN_DIR/.epoch-staging/ and flushed to disk;
2. the folder is renamed .epoch-ready/: this one atomic rename is the epoch's commit point;
3. each file is moved from there onto its name in RUN_DIR (os.replace), then the empty folder is removed.

A process killed in step 1 leaves a staging folder that the next start throws away (the epoch in progress is lost,
the one before stands); killed in step 3, a ready folder whose remaining files the next start moves into place
(`recover`, run under the run folder's lock before anything reads it). Readers of the run folder therefore see the
files of one complete epoch, and --resume never reads a mix.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from runtime.common import data as fmnist
from runtime.common.constants import FRAMEWORKS
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


STAGING = ".epoch-staging"  # files being written: thrown away by the next start
READY = ".epoch-ready"  # a complete set: moved into place, by the next start if a kill stopped that half-way


def publish(run_dir: Path, files: dict[str, Callable[[Path], Any]]) -> None:
    """Write each `name: write(path)` of files into run_dir so that all of them appear together or none does.

    A failure to write (a full disk, say) names the file, drops the set and keeps the last complete one.
    """
    recover(run_dir)  # a no-op after fit's own recover; here for a caller that did not run one
    staging, ready = run_dir / STAGING, run_dir / READY
    staging.mkdir()
    for name, write in files.items():
        try:
            write(staging / name)
            _flush(staging / name)
        except BaseException as error:
            shutil.rmtree(staging, ignore_errors=True)
            if not isinstance(error, Exception):  # Ctrl-C, SystemExit: the set is dropped whole, as it says
                raise
            raise RunDirError(
                f"{run_dir / name}: cannot be written ({one_line(error)}); the last complete epoch is kept"
            ) from error
    _flush(staging)
    os.rename(staging, ready)  # the commit point
    _flush(run_dir)
    _move_into_place(run_dir)


def recover(run_dir: Path) -> None:
    """Finish a published set that a kill interrupted, and drop what an interrupted write left half done."""
    _move_into_place(run_dir)
    shutil.rmtree(run_dir / STAGING, ignore_errors=True)
    for leftover in run_dir.glob(".tmp-*"):
        leftover.unlink(missing_ok=True)


def _move_into_place(run_dir: Path) -> None:
    ready = run_dir / READY
    if not ready.is_dir():
        return
    for path in sorted(ready.iterdir()):
        os.replace(path, run_dir / path.name)
    ready.rmdir()
    _flush(run_dir)


def _flush(path: Path) -> None:
    """fsync a file or a folder (its entries), so that a published set survives a machine's crash too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_file(value: Any) -> Callable[[Path], Any]:
    """A writer of `value` as JSON, for publish."""
    return lambda path: path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically."""
    replace_atomically(path, json_file(value))


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value in path, or default when there is no such file; a broken file is a RunFileError."""
    if not path.exists():
        return default
    with reading(path):
        return json.loads(path.read_text(encoding="utf-8"))


class EpochRecord(BaseModel):
    """One history.json entry, as written and as read back; epochs count from 1 there."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epoch: int = Field(ge=1)
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    seconds: float


class RunRecord(BaseModel):
    """run.json: what it takes to reproduce the run, and how far it got; as written and as read back."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    framework: Literal[FRAMEWORKS]
    seed: int
    device: str
    versions: dict[str, str]
    recipe: dict[str, Any]
    status: Literal["training", "finished"]
    train_samples: int | None = Field(default=None, ge=1)  # None: a run from before it was recorded
    backend: str | None = None  # Keras's
    epochs_run: int | None = Field(default=None, ge=0)
    peak_rss_mb: float | None = None
    precision_ran: str | None = None  # None: a run from before it was recorded (float32 then)
    imported_from: str | None = None  # `fmnist-dsl import`'s source model, for a run it wrote


class MetricsRecord(BaseModel):
    """The figures of metrics.json that other commands read (runtime.common.metrics writes the rest)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    test_accuracy: float
    test_loss: float


HISTORY = TypeAdapter(list[EpochRecord])


def epoch_record(epoch: int, train: tuple[float, float], val: tuple[float, float] | None, lr: float, seconds: float):
    """One history.json entry for the 0-based `epoch`: EpochRecord's fields, which read it back (a plain dict, so the
    standalone packages print this function as it is, without pydantic)."""
    val_loss, val_accuracy = val if val is not None else (None, None)
    return {
        "epoch": epoch + 1,
        "train_loss": float(train[0]),
        "train_accuracy": float(train[1]),
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "learning_rate": float(lr),
        "seconds": round(seconds, 3),
    }


def run_info(
    framework: str, recipe: Recipe, device: str, versions: dict[str, str], precision_ran: str, **extra: Any
) -> dict:
    """run.json's start: what it takes to reproduce the run (run_record adds the status); `precision_ran` the
    precision that computed: float32 where the recipe's tf32 met a device without TF32 (precision.ran)."""
    versions = {"python": platform.python_version(), "numpy": np.__version__, **versions}
    info = {"framework": framework, "seed": recipe.seed, "device": device, "versions": versions}
    return info | {"recipe": asdict(recipe), "precision_ran": precision_ran} | extra


def run_record(info: dict) -> dict:
    """run.json's content, checked against the model that reads it back."""
    return RunRecord.model_validate(info).model_dump(exclude_none=True)


def read_history(path: Path) -> list[dict]:
    """history.json's rows, epochs 1, 2, ... in order; [] without the file; anything else is a RunFileError."""
    rows = [row.model_dump() for row in _validated(path, HISTORY, [])]
    if [row["epoch"] for row in rows] != list(range(1, len(rows) + 1)):
        raise RunFileError(f"{path}: not the history this program writes: its epochs are not 1, 2, ... in order")
    return rows


def read_run_record(path: Path) -> dict:
    """run.json, checked: its fields and a recipe Recipe.from_dict can use; a RunFileError when missing or wrong."""
    record = _validated(path, RunRecord, None).model_dump()
    with reading(path):
        Recipe.from_dict(record["recipe"])
    return record


def read_metrics(path: Path) -> dict:
    """metrics.json, checked; {} without the file."""
    return _validated(path, MetricsRecord, None).model_dump() if path.exists() else {}


def _validated(path: Path, model: Any, default: Any) -> Any:
    """The JSON file at path validated by a pydantic model or TypeAdapter; `default` (unvalidated) without the
    file, or a RunFileError where default is None."""
    value = read_json(path)
    if value is None:
        if default is None:
            raise RunFileError(f"{path}: missing")
        return default
    try:
        return model.validate_python(value) if isinstance(model, TypeAdapter) else model.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise RunFileError(f"{path}: not what this program writes there: {where}: {first['msg']}") from None


def copy_spec(spec_file: Path | None, run_dir: Path) -> None:
    """The package's resolved spec beside the run's results."""
    if spec_file is not None and Path(spec_file).exists():
        write_json(run_dir / "spec.json", json.loads(Path(spec_file).read_text(encoding="utf-8")))


def write_results(
    run_dir: Path,
    history: list[dict],
    splits: fmnist.Splits,
    y_pred: np.ndarray,
    loss: float,
    info: dict,
    files: dict[str, Callable[[Path], Any]],
) -> dict:
    """A finished run: metrics.json, run.json (`info`) and `files` (the final model) published together, then the
    PNG plots; returns the metrics."""
    from runtime.common import metrics

    results = metrics.test_metrics(splits.y_test, y_pred, loss)
    publish(run_dir, files | {"metrics.json": json_file(results), "run.json": json_file(run_record(info))})
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
