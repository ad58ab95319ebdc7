"""`fmnist-dsl train`, `evaluate` and `compare`'s flags (their run-time half: runtime/commands/train.py)."""

from pathlib import Path

from compilers.commands import add_keras_backend_flag
from dsl.run_flags import add_run_flags
from dsl.targets import FRAMEWORKS

FRAMEWORK_CHOICES = (*FRAMEWORKS, "both")


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a spec's model in PyTorch, Keras or both")
    train.add_argument("spec", type=Path, metavar="SPEC")
    train.add_argument("--framework", choices=FRAMEWORK_CHOICES, default="both")
    train.add_argument("--quiet", action="store_true", help="no summary table at the end")
    _add_run_flags(train)
    evaluate = subparsers.add_parser("evaluate", help="reload a run's models and score them on its test split")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument(
        "--official-test", action="store_true", help="score on the official 10,000 test images, not the run's split"
    )
    add_keras_backend_flag(evaluate)
    compare = subparsers.add_parser("compare", help="train both frameworks and write a side-by-side report")
    compare.add_argument("spec", type=Path, metavar="SPEC")
    _add_run_flags(compare)
    seeds_help = "train both once per seed, into RUN_DIR/seed-S; the report weighs the gap against the seeds' spread"
    compare.add_argument("--seeds", type=int, nargs="+", metavar="S", help=seeds_help)


def _add_run_flags(parser) -> None:
    add_run_flags(parser)
    add_keras_backend_flag(parser)
