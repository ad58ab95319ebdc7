"""Parity assertions for users' tests: a generated package's (or a spec file's) PyTorch and Keras models agree.

    from fmnist_dsl.testing import assert_parity
    assert_parity("specs/lenet5.yaml", trajectory_steps=20)

Each check returns a `Figure` (the measured value, its tolerance and the worst layer or parameter); `assert_parity`
runs them all and fails with every figure that misses its tolerance.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from runtime.common.frameworks import guard_triton

guard_triton()  # before anything can load TensorFlow: the checks load both frameworks

from runtime.interop.parity import FORWARD_TOL, GRADIENT_TOL, WEIGHT_TOL  # noqa: E402  -- `fmnist-dsl parity`'s

TRAJECTORY_TOL = WEIGHT_TOL  # the loss at every step and the final weights, float64, max relative difference
TRAJECTORY_STEPS = 20


@dataclass(frozen=True)
class Figure:
    """One measured figure against its tolerance; `worst` names the layer or parameter where it is largest."""

    name: str
    value: float
    tolerance: float
    worst: str = ""

    @property
    def ok(self) -> bool:
        return self.value <= self.tolerance

    def __str__(self) -> str:
        where = f" (worst: {self.worst})" if self.worst else ""
        verdict = "ok" if self.ok else "FAILED"
        return f"{self.name}: {self.value:.3e} against a tolerance of {self.tolerance:.1e}{where}: {verdict}"


def load_package(package_or_spec: ModuleType | str | Path, build_dir: Path | None = None) -> ModuleType:
    """A generated package as given, or built from a spec file into `build_dir` (a temporary folder if None)."""
    if isinstance(package_or_spec, ModuleType):
        return package_or_spec
    from compilers.project import build_and_import

    folder = Path(build_dir or tempfile.mkdtemp(prefix="fmnist-parity-"))
    return build_and_import(Path(package_or_spec), folder)


def _worst(diffs: dict[str, float]) -> tuple[float, str]:
    if not diffs:
        return 0.0, ""
    name = max(diffs, key=diffs.get)
    return diffs[name], name


def check_shapes(package: ModuleType) -> Figure:
    """Output shapes and parameter counts of every layer, DSL against both frameworks: the count of mismatches."""
    from runtime.commands.summary import summary_rows

    wrong = [row["layer"] for row in summary_rows(package) if not row["dsl"] == row["torch"] == row["keras"]]
    return Figure("layers whose shapes or parameter counts differ", float(len(wrong)), 0.0, ", ".join(wrong))


def check_forward(package: ModuleType, tolerance: float = FORWARD_TOL) -> Figure:
    """Eval-mode forward on random images after copying PyTorch's weights into Keras, float32 (IEEE float32 dots)."""
    from runtime.interop import parity

    torch_model, keras_model = parity.build_pair(package)
    images = parity.random_data(tuple(package.INPUT_SHAPE), count=64, seed=1).test_images
    with parity.computing_in("float32"):  # IEEE float32 dots on a GPU too; the caller's settings come back after
        value, per_layer = parity.forward_diffs(torch_model, keras_model, images, parity.layer_pairs(package))
    first_off = next((name for name, diff in per_layer.items() if diff > tolerance), "")
    return Figure("eval forward, max absolute difference", value, tolerance, first_off and f"from layer {first_off}")


def check_gradients(package: ModuleType, tolerance: float = GRADIENT_TOL) -> Figure:
    """Every parameter's gradient of one train-mode batch (dropout off), float64."""
    from runtime.interop import parity

    value, worst = _worst(parity.gradient_check(package, parity.random_data(tuple(package.INPUT_SHAPE))))
    return Figure("gradients, max relative difference", value, tolerance, worst)


def check_trajectory(package: ModuleType, steps: int = TRAJECTORY_STEPS, tolerance: float = TRAJECTORY_TOL) -> Figure:
    """A float64 training trajectory with the package's optimizer: the worse of the losses and the final weights,
    naming the worst loss's step, or the worst weight and the first step after which it was over the tolerance."""
    from runtime.interop import parity

    run = parity.trajectory(package, package.RECIPE["optimizer"], parity.random_data(tuple(package.INPUT_SHAPE)), steps)
    loss, loss_step = run.worst_loss()
    final = run.final_weights()
    weight, label = _worst(final)
    name = f"{steps}-step trajectory, max relative difference"
    if loss >= weight:
        return Figure(name, loss, tolerance, f"the loss at step {loss_step}")
    first_over = run.first_over(tolerance)
    when = f"first over the tolerance after step {first_over[label]}" if label in first_over else f"after step {steps}"
    return Figure(name, weight, tolerance, f"{label}, {when}")


def assert_parity(
    package_or_spec: ModuleType | str | Path,
    *,
    forward_tol: float = FORWARD_TOL,
    gradient_tol: float = GRADIENT_TOL,
    trajectory_tol: float = TRAJECTORY_TOL,
    trajectory_steps: int = TRAJECTORY_STEPS,
) -> list[Figure]:
    """Fail with every missed figure unless the package's two models agree; returns the figures otherwise."""
    package = load_package(package_or_spec)
    figures = [check_shapes(package), check_forward(package, forward_tol), check_gradients(package, gradient_tol)]
    if trajectory_steps:
        figures.append(check_trajectory(package, trajectory_steps, trajectory_tol))
    failed = [str(figure) for figure in figures if not figure.ok]
    assert not failed, f"{package.NAME}: PyTorch and Keras disagree:\n  " + "\n  ".join(failed)
    return figures
