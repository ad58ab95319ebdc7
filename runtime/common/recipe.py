"""A spec's training recipe as plain values, the flags that override it, and the data it names.

The generated package prints the recipe once, as the dict `RECIPE`; both training scripts read it through here.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from dsl import exits
from dsl.run_flags import DEPRECATED_PRECISIONS, KERAS_ONLY, FlagParser, add_run_flags
from runtime.common import data as fmnist
from runtime.common import precision as precision_rules
from runtime.common import replicas as replica_rules


@dataclass(frozen=True)
class Recipe:
    """A spec's training section as plain values, every default already filled in by the DSL; sections are dicts."""

    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    validation_split: float
    split: tuple[int, int, int] | None  # train, val, test counts
    schedule: dict[str, Any] | None
    early_stopping: dict[str, Any] | None
    horizontal_flip: bool
    translate: int
    random_erasing: dict[str, Any] | None  # dsl.training.RandomErasing's fields, or None when off
    seed: int
    precision: str  # runtime.common.precision.PRECISIONS

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """A recipe from a generated package's RECIPE or run.json's copy (JSON gives the split as a list)."""
        split = values["split"]
        # A run folder from before these fields trained in float32, without erasing.
        values = {"precision": "float32", "random_erasing": None} | values
        return cls(**{f.name: values[f.name] for f in fields(cls)} | {"split": tuple(split) if split else None})

    @property
    def augments(self) -> bool:
        """Whether training batches are flipped, shifted or erased (both frameworks then augment on the numpy side)."""
        return bool(self.horizontal_flip or self.translate or self.random_erasing)


@dataclass(frozen=True)
class Options:
    """Command-line choices of one run, the recipe already overridden."""

    recipe: Recipe
    run_dir: Path
    data_dir: str | None
    train_limit: int | None
    resume: bool
    jit_compile: str = "auto"
    replicas: int = 1


class OptionError(ValueError):
    """Run flags that cannot be used together, or not here; its message is the one line to print."""


def options(
    args: argparse.Namespace,
    recipe: Recipe,
    run_dir: Path,
    framework: str,
    runnable: tuple[tuple[str, ...], str] = (precision_rules.PRECISIONS, "this device"),
) -> Options:
    """The run that parsed flags (dsl.run_flags) ask `framework`'s loop for; raises OptionError for bad choices.

    `run_dir` is the folder when --run-dir was not given. `runnable`: the precisions the framework can run here and
    the device's name (runtime.<framework>.precision's runnable()); another precision is refused before anything runs.
    """
    keras_only = [flag for flag in KERAS_ONLY if getattr(args, flag) is not None]
    if framework != "keras" and keras_only:
        flag = "--" + keras_only[0].replace("_", "-")
        raise OptionError(f"{flag} is a Keras option (XLA); the PyTorch loop has none: leave it out")
    batch_size = _given(args.batch_size, recipe.batch_size)
    replicas = _given(args.replicas, 1)
    precision = _precision(args, recipe.precision)
    problem = (
        replica_rules.problem(replicas, batch_size)
        or replica_rules.launcher_problem(replicas, batch_size)
        or precision_rules.problem(precision, *runnable)
    )
    if problem:  # before any process or device starts
        raise OptionError(problem)
    recipe = replace(
        recipe,
        epochs=_given(args.epochs, recipe.epochs),
        batch_size=batch_size,
        seed=_given(args.seed, recipe.seed),
        precision=precision,
    )
    run_dir = args.run_dir or Path(run_dir)
    return Options(recipe, run_dir, args.data_dir, args.train_limit, args.resume, args.jit_compile or "auto", replicas)


def parse_options(
    argv: list[str] | None,
    recipe: Recipe,
    run_dir: str,
    runnable: tuple[tuple[str, ...], str] = (precision_rules.PRECISIONS, "this device"),
    *,
    framework: str,
) -> Options:
    """A generated training script's command line (`argv`, else sys.argv's): dsl.run_flags, then `options` for
    `framework`'s loop (its name decides which one-framework flags it refuses).

    Bad choices exit 2 here with one line, before anything is written.
    """
    parser = FlagParser(description="Train on Fashion-MNIST with the spec's recipe.")
    add_run_flags(parser)
    args = parser.parse_args(argv)
    try:
        return options(args, recipe, Path(run_dir), framework, runnable)
    except OptionError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        raise SystemExit(exits.BAD_INPUT) from None


def _given(value, default):
    """A flag's value, or `default` when the flag was not given (0 is a value, not "not given")."""
    return default if value is None else value


def _precision(args: argparse.Namespace, recipe_precision: str) -> str:
    """--precision, else the deprecated --mixed-precision's value (said once on stderr), else the recipe's."""
    if args.mixed_precision is None:
        return args.precision or recipe_precision
    alias = DEPRECATED_PRECISIONS[args.mixed_precision]
    if args.precision not in (None, alias):
        raise OptionError(f"--mixed-precision {args.mixed_precision} contradicts --precision {args.precision}")
    print(f"--mixed-precision is deprecated; use --precision {alias}", file=sys.stderr)
    return alias


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
    """The recipe's augmentation of one NHWC batch: flip, translate, erase, each drawing from one rng that depends only
    on (seed, epoch, batch index), and only when the recipe has it."""
    if not recipe.augments:
        return batch
    rng = np.random.default_rng([recipe.seed, epoch, index, 1])
    if recipe.horizontal_flip:
        batch = fmnist.random_flip_horizontal(batch, rng)
    if recipe.translate:
        batch = fmnist.random_translate(batch, rng, recipe.translate)
    if recipe.random_erasing:
        batch = fmnist.random_erase(batch, rng, **recipe.random_erasing)
    return batch
