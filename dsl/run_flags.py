"""The flags of one training run, declared once for `fmnist-dsl train` / `compare` and every generated training script.

Each flag overrides one value of the spec's recipe or chooses where and how the run goes; none has a default here
(None or False means "the recipe's" or "off"), so runtime.common.recipe.options can tell what was given. `to_argv`
turns parsed values back into a command line from these same declarations: for a child process and the `--resume` hint.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from dsl import exits
from dsl.targets import JIT_CHOICES, PRECISIONS
from dsl.training import MAX_SEED

# --mixed-precision's values, the flag --precision replaced, and what each means now.
DEPRECATED_PRECISIONS = {"no": "float32", "bf16": "bf16", "fp16": "fp16"}
KERAS_ONLY = ("jit_compile",)  # a PyTorch run refuses these in one line (runtime.common.recipe.options)


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals are one line, `prog: message`, exit status 2, as every bad input is."""

    def error(self, message: str) -> NoReturn:
        self.exit(exits.BAD_INPUT, f"{self.prog}: {message}\n")


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from low to high (no bound above when high is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is not {bounds}")
        return value

    return parse


POSITIVE = whole_number(1)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Add every run flag to `parser`."""
    parser.add_argument("--epochs", type=POSITIVE, help="epochs to train (default: the recipe's)")
    parser.add_argument("--batch-size", type=POSITIVE, help="images per step (default: the recipe's)")
    seed_help = "initial weights, split, batch order, augmentation, dropout"
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), help=seed_help)
    parser.add_argument("--data-dir", help="folder holding the four Fashion-MNIST .gz files")
    parser.add_argument("--run-dir", type=Path, help="output folder (default: runs/<spec name>)")
    parser.add_argument("--train-limit", type=POSITIVE, help="train on the first N training images only")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--precision", choices=PRECISIONS, help="layer computation (default: the recipe's)")
    parser.add_argument("--mixed-precision", choices=tuple(DEPRECATED_PRECISIONS), help="deprecated: --precision")
    parser.add_argument(
        "--jit-compile",
        choices=JIT_CHOICES,
        help="Keras only: compile the train step with XLA (default auto: Keras's choice, off on a CPU with TensorFlow)",
    )
    replicas_help = "data-parallel replicas (processes in PyTorch, devices in Keras), each on 1/N of every batch"
    parser.add_argument("--replicas", type=POSITIVE, metavar="N", help=replicas_help)


def _declared() -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    add_run_flags(parser)
    return parser._actions  # noqa: SLF001  -- argparse keeps the declarations only there


def to_argv(values: argparse.Namespace, **overrides) -> list[str]:
    """The run flags that `values` (a parsed namespace, `overrides` replacing some) gives, as a command line."""
    argv = []
    for action in _declared():
        value = overrides.get(action.dest, getattr(values, action.dest, None))
        if value is None or value is False:
            continue
        argv += [action.option_strings[0]] + ([] if value is True else [str(value)])
    return argv
