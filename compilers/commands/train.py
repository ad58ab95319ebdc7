"""`fmnist-dsl train`, `evaluate` and `compare`'s flags (their run-time half: runtime/commands/train.py)."""

from pathlib import Path

FRAMEWORK_CHOICES = ("torch", "keras", "both")
JIT_CHOICES = ("auto", "on", "off")


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
    compare = subparsers.add_parser("compare", help="train both frameworks and write a side-by-side report")
    compare.add_argument("spec", type=Path, metavar="SPEC")
    _add_run_flags(compare)


def _add_run_flags(parser) -> None:
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", type=Path, help="output folder (default: runs/<spec name>)")
    parser.add_argument("--train-limit", type=int, help="train on the first N training images only")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--jit-compile", choices=JIT_CHOICES, help="Keras: XLA-compile the train step (default auto)")
