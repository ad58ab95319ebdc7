"""`fmnist-dsl bench`: the side-by-side speed benchmark (benchmarks/run.py), run from the repository root.

The runner lives outside the installed packages, so this command starts it as `python -m benchmarks.run` in the
repository; registering the command imports nothing, and `fmnist-dsl build` stays framework-free.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="time the generated training loops against baseline loops")
    bench.add_argument("--epochs", type=int, help="epochs per loop (default 3)")
    bench.add_argument("--train-limit", type=int, help="train on the first N training images (default: all)")
    bench.add_argument("--models", help="comma-separated: mlp,lenet5 (default: both)")
    bench.add_argument("--frameworks", help="comma-separated: torch,keras (default: both)")
    bench.add_argument("--rounds", type=int, help="alternate baseline and generated loops R times (default 1)")
    bench.add_argument("--out", type=Path, help="results folder (default: benchmarks/results)")
    bench.set_defaults(run=run_bench)


def run_bench(args) -> int:
    """Forward the given flags to the runner; its exit status is this command's."""
    if not (ROOT / "benchmarks" / "run.py").is_file():
        raise FileNotFoundError(f"{ROOT / 'benchmarks'} not found: run `fmnist-dsl bench` from a source checkout")
    argv = []
    for flag in ("epochs", "train_limit", "models", "frameworks", "rounds", "out"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value.resolve() if flag == "out" else value)]
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *argv], cwd=ROOT, check=False).returncode
