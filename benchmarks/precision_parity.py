"""`python -m benchmarks.precision_parity [SPEC ...]`: the 16-bit parity figures of docs/precision.md, per spec.

For each example spec (default: all of specs/), runtime.interop.precision_parity.check in bf16 on 64 random images,
then on the first 64 real training and 256 real test images; figures in units of bf16's roundoff u = 2^-8.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from runtime.common.frameworks import require

ROOT = Path(__file__).resolve().parents[1]
REAL_TRAIN, REAL_TEST = 64, 256


def line(name: str, data_name: str, report) -> str:
    """One spec on one data set: the eval forward, the worst gradient tensor, the unexplained part, the verdict."""
    u = report.unit_roundoff
    worst = max(report.gradient_rel_diff, key=report.gradient_rel_diff.get)
    return (
        f"{name} {data_name}: forward {report.forward_max_rel_diff / u:.2f}u, gradient worst {worst} "
        f"{report.gradient_max_rel_diff / u:.1f}u, unexplained {report.gradient_unexplained / u:.2f}u, "
        f"{'within' if report.ok else 'OUTSIDE'} the bounds"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision_parity", description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", help="spec names (default: every spec in specs/)")
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST files")
    args = parser.parse_args(argv)
    require("torch", "keras", purpose="benchmarks.precision_parity")  # PyTorch first: the safe import order

    from compilers.project import build_and_import
    from runtime.common.data import load_split_arrays
    from runtime.interop import parity, precision_parity

    names = args.specs or sorted(path.stem for path in (ROOT / "specs").glob("*.yaml"))
    real = load_split_arrays(args.data_dir, download=False)
    real_data = parity.ParityData(
        real.train_images[:REAL_TRAIN], real.train_labels[:REAL_TRAIN], real.test_images[:REAL_TEST], real=True
    )
    all_ok = True
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            package = build_and_import(ROOT / "specs" / f"{name}.yaml", Path(out))
            for data_name, data in (("random", None), ("real", real_data)):
                report = precision_parity.check(package, "bf16", data)
                all_ok &= report.ok
                print(line(name, data_name, report), flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
