"""`fmnist-dsl bench`: the side-by-side speed benchmark (`python -m benchmarks.run`, an installed package)."""

import subprocess
import sys

RUNNER_FLAGS = ("epochs", "train_limit", "models", "frameworks", "rounds", "out")


def run(args, build) -> int:
    """Forward the given flags to the runner in its own process; its exit status is this command's."""
    argv = []
    for flag in RUNNER_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value.resolve() if flag == "out" else value)]
    argv += ["--bf16"] if args.bf16 else []
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *argv], check=False).returncode
