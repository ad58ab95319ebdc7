"""`fmnist-dsl parity` and `export`: measure that a spec's two models compute and train alike; move a trained model."""

import json
from pathlib import Path

from dsl import exits
from runtime.common.constants import FRAMEWORKS
from runtime.common.frameworks import guard_triton, require
from runtime.keras.backends import ALL

REAL_TEST_IMAGES = 1000


def load_data(args, input_shape: tuple[int, int, int]):
    """Real Fashion-MNIST when present and the spec takes 28x28x1 images; else None and the reason."""
    from runtime.common.data import DataError, load_split_arrays
    from runtime.interop.parity import ParityData

    if args.no_real_data:
        return None, "--no-real-data given"
    if tuple(input_shape) != (28, 28, 1):
        return None, f"the spec's input {tuple(input_shape)} is not Fashion-MNIST's (28, 28, 1)"
    try:
        data = load_split_arrays(args.data_dir, download=False)
    except DataError as error:
        return None, f"Fashion-MNIST not found ({str(error).splitlines()[0]})"
    return ParityData(data.train_images, data.train_labels, data.test_images[:REAL_TEST_IMAGES], real=True), ""


def measure(args, package) -> dict:
    """The parity report of a generated package as a dict, with where the data came from."""
    guard_triton()
    from runtime.interop import parity

    optimizer = package.RECIPE["optimizer"]
    data, why_random = load_data(args, package.INPUT_SHAPE)
    pairs = parity.layer_pairs(package)
    report = parity.check(package, optimizer, data, pairs, steps=args.steps, precision=args.precision).to_dict()
    report["spec"] = package.NAME
    report["optimizer"] = optimizer
    report["data"] = "Fashion-MNIST" if data else f"random images and labels: {why_random}"
    return report


DOTS = {"float32": "IEEE float32", "tf32": "TF32"}


def _fallback(report: dict) -> str:
    """The note when tf32 was asked for and Keras's device has no TF32."""
    if report["precision"] == report["precision_ran"]:
        return ""
    return f" (--precision {report['precision']}: no TF32 on Keras's device; judged by {report['precision']}'s targets)"


def _line(label: str, value, target: float | None = None) -> str:
    mark = "" if target is None else ("  ok" if value <= target else f"  FAIL (target {target:g})")
    return f"  {label:<48} {value:.3e}{mark}"


def print_report(report: dict) -> None:
    """The human-readable report, each figure against the target the report was judged by."""
    targets = report["targets"]
    print(f"parity of {report['spec']!r} on Keras's {report['keras_backend']} backend (data: {report['data']})")
    print(f"  float32 figures: dots and convolutions in {DOTS[report['precision_ran']]}{_fallback(report)}")
    print(_line("eval forward, random input (float32)", report["forward_random_max_abs_diff"], targets["forward"]))
    if report["forward_real_max_abs_diff"] is not None:
        print(
            _line("eval forward, real test images (float32)", report["forward_real_max_abs_diff"], targets["forward"])
        )
    for name, value in report["layer_max_abs_diff"].items():
        print(_line(f"  layer {name}", value))
    print(_line("eval forward, Keras weights in PyTorch", report["forward_to_torch_max_abs_diff"], targets["forward"]))
    print(_line("train forward, dropout off (float32), absolute", report["train_forward_max_abs_diff"]))
    relative = report["train_forward_max_rel_diff"]
    print(_line("train forward, dropout off (float32), relative", relative, targets["train_forward"]))
    print("  a float64 model (Keras's float64-to-float32 demotion lifted off TensorFlow):")
    print(_line("gradients, max relative", report["gradient_max_rel_diff"], targets["gradient"]))
    for name, value in report["gradient_rel_diff"].items():
        print(_line(f"  {name}", value))
    print(f"  trajectory: {report['trajectory_steps']} steps of {report['optimizer']}")
    for offset, batch_norm in report["exact_zero_gradients"].items():
        print(f"    {offset} trains with its exact gradient, 0: {batch_norm} cancels it")
    loss_label = f"loss per step, max relative (step {report['loss_worst_step']})"
    print(_line(loss_label, report["loss_max_rel_diff"], targets["loss"]))
    print(_line("final weights, max relative", report["final_weights_max_rel_diff"], targets["weights"]))
    first_over = report["weights_first_over"]
    for name, value in report["final_weights_rel_diff"].items():
        over = f"  first over the target after step {first_over[name]}" if name in first_over else ""
        print(_line(f"  {name}", value) + over)
    print("OK" if report["ok"] else "FAILED")


def run(args, build) -> int:
    """Exit 1 when a figure misses its target."""
    if args.keras_backend == ALL:
        from runtime.commands import parity_backends

        return parity_backends.run(args)
    require(*FRAMEWORKS, purpose="parity")
    report = measure(args, build(args.spec))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["ok"] else exits.CHECK_FAILED


def run_export(args, build) -> int:
    """Export the run's model and print the agreement figures; exit 1 when they miss their targets."""
    from runtime.common.data import DataError, load_split_arrays
    from runtime.interop import export
    from runtime.interop.parity import random_data

    needed = export.needed_frameworks(args.run_dir, args.to) + (("onnx",) if args.to == "onnx" else ())
    require(*needed, purpose=f"export --to {args.to} of a {export.source_framework(args.run_dir)} run")
    package = build(args.run_dir / "spec.json")
    try:
        images, source = load_split_arrays(args.data_dir, download=False).test_images, "the Fashion-MNIST test set"
    except DataError:
        images, source = random_data(tuple(package.INPUT_SHAPE), count=1000).test_images, "random images (no data)"
    out_dir = args.out or Path(args.run_dir) / f"export-{args.to}"
    figures = export.export(package, args.run_dir, args.to, out_dir, images)
    print(f"exported {figures['source']} -> {args.to} into {out_dir} ({figures['images']} images: {source})")
    agree, worst = figures["argmax_agreement"], figures["max_probability_diff"]
    print(f"  identical argmax {agree:.4%}, max probability difference {worst:.2e}")
    print("OK" if figures["ok"] else "FAILED")
    return 0 if figures["ok"] else exits.CHECK_FAILED
