"""`python -m benchmarks.tf32_parity [SPEC ...]`: parity's float32 figures with TF32 emulated on the CPU.

A GPU's TF32 rounds the inputs of each float32 dot and convolution to 11 significant bits and sums in float32. Here
PyTorch's side of parity does the same on the CPU (`emulated_tf32`: the inputs of every linear and conv2d call
rounded to the nearest TF32 value, or truncated with --truncate) while Keras's computes in IEEE float32: the
difference a GPU's TF32 on one side makes, measured without a GPU. For each example spec (default: all of specs/) it
prints the eval forward (random and, when at hand, real test images) and the train forward, in units of TF32's
unit roundoff, against `fmnist-dsl parity --precision tf32`'s targets; then the same figures with the flatten order
planted wrong (the weight transfer leaving the first Dense's rows in PyTorch's order), the bug the float32 eval
forward target catches. docs/parity.md holds its output.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
from compilers.project import build_and_import  # noqa: E402
from runtime.common.data import DataError, load_split_arrays  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DROPPED_BITS = 23 - 10  # float32's mantissa bits that TF32 does not keep


def to_tf32(tensor: torch.Tensor | None, truncate: bool = False) -> torch.Tensor | None:
    """A float32 tensor rounded to TF32's 10 mantissa bits, to nearest (ties away from zero) or by truncation."""
    if tensor is None or tensor.dtype != torch.float32:
        return tensor
    bits = tensor.contiguous().view(torch.int32)
    if not truncate:
        bits = bits + (1 << (DROPPED_BITS - 1))
    return (bits & ~((1 << DROPPED_BITS) - 1)).view(torch.float32)


@contextmanager
def emulated_tf32(truncate: bool = False):
    """While open, PyTorch's linear and conv2d round their input and weight to TF32 (the bias is added in float32)."""
    functional = torch.nn.functional
    linear, conv2d = functional.linear, functional.conv2d

    def tf32_linear(x, weight, bias=None):
        return linear(to_tf32(x, truncate), to_tf32(weight, truncate), bias)

    def tf32_conv2d(x, weight, bias=None, *args, **kwargs):
        return conv2d(to_tf32(x, truncate), to_tf32(weight, truncate), bias, *args, **kwargs)

    with mock.patch.object(functional, "linear", tf32_linear), mock.patch.object(functional, "conv2d", tf32_conv2d):
        yield


def figures(package, data: parity.ParityData, truncate: bool = False) -> dict[str, float]:
    """The eval forward (random images, and real ones when `data` is real) and the train forward, PyTorch's side in
    emulated TF32, Keras's in IEEE float32."""
    noise = parity.random_data(tuple(package.INPUT_SHAPE), count=64, seed=1).test_images
    with parity.computing_in("float32"), emulated_tf32(truncate):
        torch_model, keras_model = parity.build_pair(package)
        found = {"forward": parity.forward_diffs(torch_model, keras_model, noise, [])[0]}
        if data.real:
            found["forward_real"] = parity.forward_diffs(torch_model, keras_model, data.test_images, [])[0]
        found["train_forward"] = parity.train_forward_diff(torch_model, keras_model, package.OUTPUT, data)[1]
    return found


def planted_flatten_order():
    """The weight transfer forgetting that Keras flattens HWC and PyTorch CHW."""
    return mock.patch.object(weights, "flattened_maps", lambda _model: {})


def _data(package) -> parity.ParityData:
    if tuple(package.INPUT_SHAPE) == (28, 28, 1):
        try:
            real = load_split_arrays(None, download=False)
            return parity.ParityData(real.train_images, real.train_labels, real.test_images[:1000], real=True)
        except DataError:
            pass
    return parity.random_data(tuple(package.INPUT_SHAPE))


def _row(name: str, found: dict[str, float]) -> str:
    targets = parity.TARGETS_IN["tf32"]
    cells = []
    for figure, value in found.items():
        target = targets["train_forward" if figure == "train_forward" else "forward"]
        verdict = "ok" if value <= target else "OVER"
        cells.append(f"{figure} {value:.1e} ({value / parity.TF32_UNIT_ROUNDOFF:.2f}u, {verdict})")
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tf32_parity", description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path, help="spec files (default: specs/*.yaml)")
    parser.add_argument("--truncate", action="store_true", help="truncate to TF32 rather than round to nearest")
    args = parser.parse_args(argv)
    specs = args.specs or sorted((ROOT / "specs").glob("*.yaml"))
    targets = parity.TARGETS_IN["tf32"]
    print(f"TF32 targets: forward {targets['forward']:.1e}, train forward {targets['train_forward']:.1e}")
    with tempfile.TemporaryDirectory(prefix="fmnist-tf32-") as folder:
        for spec in specs:
            package = build_and_import(spec, Path(folder) / spec.stem)
            data = _data(package)
            print(_row(spec.stem, figures(package, data, args.truncate)), flush=True)
            if any(kind == "Conv2D" for _, kind, *_ in package.LAYERS):  # a flatten of several channels
                with planted_flatten_order():
                    print(_row(f"{spec.stem}, flatten order planted", figures(package, data, args.truncate)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
