"""The `fmnist-dsl` command, and the one place where compilers and runtime meet.

compilers/commands/ declares every command's flags; a command that builds or checks code runs there. A command that
runs a framework has its run-time half in runtime/commands/, imported only when that command runs, so `fmnist-dsl
build` stays fast and framework-free; this module builds the spec's package and hands it over.
"""

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from compilers.project import build_and_import
from dsl import SpecError, exits, loader, run_flags
from runtime.common.frameworks import MissingFrameworkError, silence_tensorflow_start_up
from runtime.keras.backends import BackendError, select_for_command

# Each module defines `register(subparsers)`, which adds its command(s).
COMMAND_MODULES = (
    "compilers.commands.build",
    "compilers.commands.summary",
    "compilers.commands.parity",
    "compilers.commands.train",
    "compilers.commands.bench",
    "compilers.commands.lint",
    "compilers.commands.importing",
)
# Command -> (module, function) of its run-time half; each takes (args, build), build(spec_path) -> package.
RUNTIME_COMMANDS = {
    "summary": ("runtime.commands.summary", "run"),
    "parity": ("runtime.commands.parity", "run"),
    "export": ("runtime.commands.parity", "run_export"),
    "train": ("runtime.commands.train", "run_train"),
    "evaluate": ("runtime.commands.train", "run_evaluate"),
    "compare": ("runtime.commands.train", "run_compare"),
    "bench": ("runtime.commands.bench", "run"),
    "import": ("runtime.commands.importing", "run"),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered."""
    root = run_flags.FlagParser(prog="fmnist-dsl", description="One spec, equivalent PyTorch and Keras models.")
    root.add_argument("--verbose", action="store_true", help="show the frameworks' own start-up logging")
    root.add_argument(
        "--max-spec-bytes",
        type=run_flags.POSITIVE,
        default=loader.MAX_SPEC_BYTES,
        metavar="N",
        help=f"refuse spec files larger than N bytes, unread (default: {loader.MAX_SPEC_BYTES:,})",
    )
    subparsers = root.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return root


def _run_time_half(args) -> int:
    """Run a framework command with a builder whose packages live in one temporary folder for the process."""
    module, function = RUNTIME_COMMANDS[args.command]
    with tempfile.TemporaryDirectory(prefix="fmnist-dsl-") as folder:
        built: dict[Path, object] = {}

        def build(spec_path: Path):
            key = Path(spec_path).resolve()
            if key not in built:
                built[key] = build_and_import(Path(spec_path), Path(folder) / str(len(built)))
            return built[key]

        return getattr(importlib.import_module(module), function)(args, build) or 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input is reported once, without a traceback, with exit status 2."""
    args = parser().parse_args(argv)
    loader.MAX_SPEC_BYTES = args.max_spec_bytes  # every spec this process reads, built or linted
    if not args.verbose:
        silence_tensorflow_start_up()
    try:
        if hasattr(args, "keras_backend"):  # before anything imports keras, which reads it once
            select_for_command(args.keras_backend, args.command)
        if args.command in RUNTIME_COMMANDS:
            return _run_time_half(args)
        return args.run(args) or 0
    except (SpecError, OSError, MissingFrameworkError, BackendError) as error:
        print(f"fmnist-dsl: {error}", file=sys.stderr)
        return exits.BAD_INPUT
    except KeyboardInterrupt:
        print("fmnist-dsl: interrupted", file=sys.stderr)
        return exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
