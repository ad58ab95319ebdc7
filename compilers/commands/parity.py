"""`fmnist-dsl parity`: build both models, transfer weights, and measure that they compute and train alike."""

import json
import tempfile
from pathlib import Path

from compilers.lowering import lower
from compilers.project import build_and_import
from dsl import load_spec

DEFAULT_OPTIMIZER = {"name": "sgd", "learning_rate": 0.01}
REAL_TEST_IMAGES = 1000


def register(subparsers) -> None:
    parity = subparsers.add_parser("parity", help="numerical parity of the PyTorch and Keras models of a spec")
    parity.add_argument("spec", type=Path, metavar="SPEC")
    parity.add_argument("--json", action="store_true", help="print one JSON object")
    parity.add_argument("--steps", type=int, default=100, help="optimizer steps of the float64 trajectory")
    parity.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST files")
    parity.add_argument("--no-real-data", action="store_true", help="use random images only")
    parity.set_defaults(run=run)
    export = subparsers.add_parser("export", help="a trained run's model as the other framework's model, or ONNX")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder with model.pt or model.keras")
    export.add_argument("--to", choices=("keras", "torch", "onnx"), required=True)
    export.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/export-TO)")
    export.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST files")
    export.set_defaults(run=run_export)


def load_data(args, input_shape: tuple[int, int, int]):
    """Real Fashion-MNIST when present and the spec takes 28x28x1 images; else None and the reason."""
    from runtime.data import DataError, load_split_arrays
    from runtime.parity import ParityData

    if args.no_real_data:
        return None, "--no-real-data given"
    if tuple(input_shape) != (28, 28, 1):
        return None, f"the spec's input {tuple(input_shape)} is not Fashion-MNIST's (28, 28, 1)"
    try:
        data = load_split_arrays(args.data_dir, download=False)
    except DataError as error:
        return None, f"Fashion-MNIST not found ({str(error).splitlines()[0]})"
    return ParityData(data.train_images, data.train_labels, data.test_images[:REAL_TEST_IMAGES], real=True), ""


def measure(args) -> dict:
    """The parity report of `args.spec` as a dict, with where the data came from."""
    from runtime.frameworks import guard_triton

    guard_triton()

    from runtime import parity

    spec = load_spec(args.spec)
    model = lower(spec, args.spec.name)
    optimizer = spec.training.optimizer.model_dump() if spec.training else DEFAULT_OPTIMIZER
    data, why_random = load_data(args, model.input_shape)
    with tempfile.TemporaryDirectory() as folder:
        package = build_and_import(args.spec, Path(folder))
        pairs = [(op.name, op.output_attr) for op in model.ops]
        report = parity.check(package, optimizer, data, pairs, steps=args.steps).to_dict()
    report["spec"] = spec.name
    report["optimizer"] = optimizer
    report["data"] = "Fashion-MNIST" if data else f"random images and labels: {why_random}"
    return report


def _line(label: str, value, target: float | None = None) -> str:
    mark = "" if target is None else ("  ok" if value <= target else f"  FAIL (target {target:g})")
    return f"  {label:<48} {value:.3e}{mark}"


def print_report(report: dict) -> None:
    """The human-readable report."""
    from runtime.parity import FORWARD_TOL, GRADIENT_TOL, LOSS_TOL, WEIGHT_TOL

    print(f"parity of {report['spec']!r} (data: {report['data']})")
    print(_line("eval forward, random input (float32)", report["forward_random_max_abs_diff"], FORWARD_TOL))
    if report["forward_real_max_abs_diff"] is not None:
        print(_line("eval forward, real test images (float32)", report["forward_real_max_abs_diff"], FORWARD_TOL))
    for name, value in report["layer_max_abs_diff"].items():
        print(_line(f"  layer {name}", value))
    print(_line("train forward, dropout off (float32), absolute", report["train_forward_max_abs_diff"]))
    print(_line("train forward, dropout off (float32), relative", report["train_forward_max_rel_diff"], GRADIENT_TOL))
    print(_line("gradients, max relative (float64)", report["gradient_max_rel_diff"], GRADIENT_TOL))
    for name, value in report["gradient_rel_diff"].items():
        print(_line(f"  {name}", value))
    steps = report["trajectory_steps"]
    print(f"  trajectory: {steps} steps of {report['optimizer']} in float64")
    print(_line("loss per step, max relative", report["loss_max_rel_diff"], LOSS_TOL))
    print(_line("final weights, max relative", report["final_weights_max_rel_diff"], WEIGHT_TOL))
    print("OK" if report["ok"] else "FAILED")


def run(args) -> int:
    report = measure(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


def run_export(args) -> int:
    """Export the run's model and print the agreement figures; exit 1 when they miss their targets."""
    from runtime.frameworks import guard_triton

    guard_triton()

    from runtime import export
    from runtime.data import DataError, load_split_arrays
    from runtime.parity import random_data

    spec_file = args.run_dir / "spec.json"
    spec = load_spec(spec_file)
    try:
        images, source = load_split_arrays(args.data_dir, download=False).test_images, "the Fashion-MNIST test set"
    except DataError:
        images, source = random_data(tuple(spec.input), count=1000).test_images, "random images (no Fashion-MNIST)"
    out_dir = args.out or args.run_dir / f"export-{args.to}"
    with tempfile.TemporaryDirectory() as folder:
        package = build_and_import(spec_file, Path(folder))
        figures = export.export(package, args.run_dir, args.to, out_dir, images)
    print(f"exported {figures['source']} -> {args.to} into {out_dir} ({figures['images']} images: {source})")
    agree, worst = figures["argmax_agreement"], figures["max_probability_diff"]
    print(f"  identical argmax {agree:.4%}, max probability difference {worst:.2e}")
    print("OK" if figures["ok"] else "FAILED")
    return 0 if figures["ok"] else 1
