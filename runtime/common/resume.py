"""What `--resume` may continue: a run of the same model and the same recipe, only trained for longer.

Only `epochs` may change on resume (train on to a later epoch; a cosine schedule then stretches to the new end).
Everything else the run was started with (the model, optimizer, batch size, seed, split, validation, schedule, early
stopping, augmentation, the number of training images) shapes the checkpoint, so resuming with another value would
continue one run as a different one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from runtime.common.recipe import Recipe
from runtime.common.rundir import RunDirError, RunFileError, read_json, read_run_record

MAY_CHANGE = ("epochs",)
NOT_THE_MODEL = ("training", "lint")  # spec sections compared through the recipe, or that change no weight


class ResumeMismatchError(RunDirError):
    """--resume into a run folder that another spec or recipe made."""


def model_sha(spec: dict) -> str:
    """A short hash of the spec's model part (its name, input and layers)."""
    model = {key: value for key, value in spec.items() if key not in NOT_THE_MODEL}
    return hashlib.sha256(json.dumps(model, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys, so a difference names the one field (optimizer.learning_rate)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat |= _flat(item, f"{prefix}.{key}" if prefix else key)
    return flat


def recipe_changes(recorded: dict, current: Recipe) -> list[str]:
    """'field old -> new' for every recipe value that differs, but for those that may change on resume.

    A section whose name changed (sgd -> adam) is named once, not with every setting the other one lacks.
    """
    old = _flat({k: v for k, v in recorded.items() if k not in MAY_CHANGE})
    new = _flat({k: v for k, v in json.loads(json.dumps(asdict(current))).items() if k not in MAY_CHANGE})
    changed = [key for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    renamed = {key.removesuffix(".name") for key in changed if key.endswith(".name")}
    changed = [key for key in changed if key.endswith(".name") or key.split(".")[0] not in renamed]
    return [f"{key} {old.get(key)} -> {new.get(key)}" for key in changed]


def _spec_mismatch(run_dir: Path, spec_file: Path | None) -> str | None:
    """Why the run's spec.json is not the package's model, or None when it is (or either is unknown)."""
    if spec_file is None or not Path(spec_file).exists() or not (run_dir / "spec.json").exists():
        return None
    recorded, current = read_json(run_dir / "spec.json"), read_json(Path(spec_file))
    if model_sha(recorded) == model_sha(current):
        return None
    return (
        f"{run_dir} was trained from spec {recorded.get('name')!r} (model sha {model_sha(recorded)}), this is"
        f" {current.get('name')!r} (model sha {model_sha(current)})"
    )


def check_resumable(run_dir: Path, framework: str, recipe: Recipe, spec_file: Path | None, train_samples: int) -> None:
    """Refuse, in one line, to resume a run made by another spec, framework, recipe or training set."""
    if not (run_dir / "run.json").exists():
        raise RunFileError(f"{run_dir / 'run.json'}: missing; cannot tell what the checkpoint is")
    info = read_run_record(run_dir / "run.json")
    why = _spec_mismatch(run_dir, spec_file)
    if why is None and info.get("framework") != framework:
        why = f"{run_dir} holds a {info.get('framework')} run, this is {framework}"
    if why is None and (changes := recipe_changes(info["recipe"], recipe)):
        why = f"{run_dir} was trained with another recipe: {', '.join(changes)}"
    if why is None and info.get("train_samples") not in (None, train_samples):
        why = f"{run_dir} was trained on {info['train_samples']} images, this is {train_samples} (--train-limit)"
    if why is not None:
        raise ResumeMismatchError(
            f"{why}; --resume continues only the same model and recipe (only {', '.join(MAY_CHANGE)} may change):"
            " drop --resume to start over, or choose another --run-dir"
        )
