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
from dsl.targets import JIT_CHOICES
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
    seed: int
    precision: str  # runtime.common.precision.PRECISIONS

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """A recipe from a generated package's RECIPE or run.json's copy (JSON gives the split as a list)."""
        split = values["split"]
        values = {"precision": "float32"} | values  # a run folder from before the field trained in float32
        return cls(**{f.name: values[f.name] for f in fields(cls)} | {"split": tuple(split) if split else None})

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
    jit_compile: str = "auto"
    replicas: int = 1


def parse_options(
    argv: list[str] | None,
    recipe: Recipe,
    run_dir: str,
    runnable: tuple[tuple[str, ...], str] = (precision_rules.PRECISIONS, "this device"),
) -> Options:
    """The flags every generated training script takes; each overrides one value of the recipe.

    `runnable`: the precisions the framework can run here and the device's name (runtime.<framework>.precision's
    runnable()); another precision exits 2 here, before anything is written.
    """
    parser = argparse.ArgumentParser(description="Train on Fashion-MNIST with the spec's recipe.")
    parser.add_argument("--epochs", type=int, default=recipe.epochs)
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size)
    parser.add_argument("--seed", type=int, default=recipe.seed)
    parser.add_argument("--data-dir", default=None, help="folder holding the four Fashion-MNIST .gz files")
    parser.add_argument("--run-dir", type=Path, default=Path(run_dir), help=f"output folder (default: {run_dir})")
    parser.add_argument("--train-limit", type=int, default=None, help="train on the first N training images only")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument(
        "--precision",
        choices=precision_rules.PRECISIONS,
        default=None,
        help=f"layer computation in float32 or a 16-bit type (default: the recipe's, {recipe.precision})",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=tuple(precision_rules.DEPRECATED_VALUES),
        default=None,
        help="deprecated: --precision",
    )
    parser.add_argument(
        "--jit-compile",
        choices=JIT_CHOICES,
        default="auto",
        help="Keras only: compile the train step with XLA (auto: Keras's choice, off on a CPU with TensorFlow)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="data-parallel replicas, each on 1/N of a batch")
    args = parser.parse_args(argv)
    precision = _precision(args, recipe.precision, parser.prog)
    problem = (
        replica_rules.problem(args.replicas, args.batch_size)
        or replica_rules.launcher_problem(args.replicas, args.batch_size)
        or precision_rules.problem(precision, *runnable)
    )
    if problem:  # before any process or device starts
        print(f"{parser.prog}: {problem}", file=sys.stderr)
        raise SystemExit(exits.BAD_INPUT)
    recipe = replace(recipe, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, precision=precision)
    choices = (args.resume, args.jit_compile, args.replicas)
    return Options(recipe, args.run_dir, args.data_dir, args.train_limit, *choices)


def _precision(args: argparse.Namespace, recipe_precision: str, prog: str) -> str:
    """--precision, else the deprecated --mixed-precision's value (said once on stderr), else the recipe's."""
    if args.mixed_precision is None:
        return args.precision or recipe_precision
    alias = precision_rules.DEPRECATED_VALUES[args.mixed_precision]
    if args.precision not in (None, alias):
        print(
            f"{prog}: --mixed-precision {args.mixed_precision} contradicts --precision {args.precision}",
            file=sys.stderr,
        )
        raise SystemExit(exits.BAD_INPUT)
    print(f"{prog}: --mixed-precision is deprecated; use --precision {alias}", file=sys.stderr)
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
    """The recipe's augmentation of one NHWC batch; the rng depends only on (seed, epoch, batch index)."""
    if not recipe.augments:
        return batch
    rng = np.random.default_rng([recipe.seed, epoch, index, 1])
    if recipe.horizontal_flip:
        batch = fmnist.random_flip_horizontal(batch, rng)
    if recipe.translate:
        batch = fmnist.random_translate(batch, rng, recipe.translate)
    return batch
