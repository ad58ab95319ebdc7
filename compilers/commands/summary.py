"""`fmnist-dsl summary`'s flags (its run-time half: runtime/commands/summary.py)."""

from pathlib import Path


def register(subparsers) -> None:
    summary = subparsers.add_parser("summary", help="layer table: output shapes and parameters in both frameworks")
    summary.add_argument("spec", type=Path, metavar="SPEC")
