"""`fmnist-dsl bench`'s flags (its run-time half: runtime/commands/bench.py runs `python -m benchmarks.run`)."""

from pathlib import Path

from compilers.commands import add_keras_backend_flag


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="time the generated training loops against baseline loops")
    bench.add_argument("--epochs", type=int, help="epochs per loop (default 3)")
    bench.add_argument("--train-limit", type=int, help="train on the first N training images (default: all)")
    bench.add_argument("--models", help="comma-separated: mlp,lenet5 (default: both)")
    bench.add_argument(
        "--frameworks",
        help="comma-separated: torch, keras (on --keras-backend), keras-jax, keras-torch (default: torch,keras)",
    )
    bench.add_argument("--bf16", action="store_true", help="also the generated loops with --precision bf16")
    bench.add_argument("--rounds", type=int, help="alternate baseline and generated loops R times (default 1)")
    bench.add_argument("--out", type=Path, help="results folder (default: benchmarks/results)")
    add_keras_backend_flag(bench)
