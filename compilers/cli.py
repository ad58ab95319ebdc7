"""The `fmnist-dsl` command: a thin dispatcher; each command lives in its own module.

Command modules import frameworks only inside their `run`, so `fmnist-dsl build` stays fast.
This is the one place where compilers and runtime meet.
"""

import argparse
import importlib
import os
import sys

from dsl import SpecError

# Each module defines `register(subparsers)`, which adds its command(s) with `run` as the handler.
COMMAND_MODULES = (
    "compilers.commands.build",
    "compilers.commands.summary",
    "compilers.commands.parity",
    "compilers.commands.train",
    "compilers.commands.bench",
)

EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered."""
    root = argparse.ArgumentParser(prog="fmnist-dsl", description="One spec, equivalent PyTorch and Keras models.")
    subparsers = root.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(subparsers)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input is reported once, without a traceback, with exit status 2."""
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users
    try:
        return args.run(args) or 0
    except (SpecError, OSError) as error:
        print(f"fmnist-dsl: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
