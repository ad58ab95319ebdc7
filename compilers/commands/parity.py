"""`fmnist-dsl parity` and `export`'s flags (their run-time half: runtime/commands/parity.py)."""

from pathlib import Path

from compilers.commands import add_keras_backend_flag
from dsl.targets import PARITY_PRECISIONS


def register(subparsers) -> None:
    parity = subparsers.add_parser("parity", help="numerical parity of the PyTorch and Keras models of a spec")
    parity.add_argument("spec", type=Path, metavar="SPEC")
    parity.add_argument("--json", action="store_true", help="print one JSON object")
    parity.add_argument("--steps", type=int, default=100, help="optimizer steps of the float64 trajectory")
    parity.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST files")
    parity.add_argument("--no-real-data", action="store_true", help="use random images only")
    parity.add_argument(
        "--precision",
        choices=PARITY_PRECISIONS,
        default="float32",
        help="the float32 figures' dots and convolutions in IEEE float32 (default) or TF32, with TF32's targets",
    )
    add_keras_backend_flag(parity, every=True)
    export = subparsers.add_parser("export", help="a trained run's model as the other framework's model, or ONNX")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder with model.pt or model.keras")
    export.add_argument("--to", choices=("keras", "torch", "onnx"), required=True)
    export.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/export-TO)")
    export.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST files")
    add_keras_backend_flag(export)
