"""`pytest --fmnist-parity [PATH ...]`: every spec file under the paths becomes parity test items.

Registered by installing fmnist-dsl (the `pytest11` entry point) and off unless `--fmnist-parity` is given. A YAML
file is a spec when its content is a mapping with `layers` (its name does not matter). Per spec:
`SPEC::build` (it builds; a committed package under the `fmnist_parity_generated` folder, `generated` by default, is
current), `::shapes`, `::forward`, `::gradients`, `::trajectory` (fmnist_dsl.testing). The committed package, where
there is one, is what the numeric items check. Tolerances and the trajectory's length come from the ini file:

    [pytest]
    fmnist_parity_forward_tol = 1e-5
    fmnist_parity_gradient_tol = 1e-4
    fmnist_parity_trajectory_tol = 1e-10
    fmnist_parity_trajectory_steps = 20

This module imports no framework: the items load them when they run.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml

# ini option -> the fmnist_dsl.testing default it overrides (read when an item runs: that module loads frameworks).
INI_OPTIONS = {
    "fmnist_parity_forward_tol": "FORWARD_TOL",
    "fmnist_parity_gradient_tol": "GRADIENT_TOL",
    "fmnist_parity_trajectory_tol": "TRAJECTORY_TOL",
    "fmnist_parity_trajectory_steps": "TRAJECTORY_STEPS",
}
CHECKS = ("build", "shapes", "forward", "gradients", "trajectory")


def pytest_addoption(parser) -> None:
    parser.getgroup("fmnist-parity").addoption(
        "--fmnist-parity",
        action="store_true",
        help="collect fmnist-dsl spec files (YAML) under the given paths as PyTorch/Keras parity tests",
    )
    for name, default in INI_OPTIONS.items():
        parser.addini(name, help=f"fmnist-dsl parity: overrides fmnist_dsl.testing.{default}", default=None)
    parser.addini("fmnist_parity_generated", help="folder of the committed generated packages", default="generated")


def is_spec(path: Path) -> bool:
    """A mapping with `layers`; text that does not parse counts when a top-level `layers:` key is in it."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return re.search(r"^layers\s*:", text, re.MULTILINE) is not None
    return isinstance(data, dict) and "layers" in data


def pytest_collect_file(file_path: Path, parent):
    if parent.config.getoption("fmnist_parity") and file_path.suffix in (".yaml", ".yml") and is_spec(file_path):
        return SpecFile.from_parent(parent, path=file_path)
    return None


class ParityFailure(Exception):
    """A parity item's failure: its message is the whole report, no traceback."""


class SpecFile(pytest.File):
    """One spec file: one item per check, or a single failing item when the spec does not load."""

    def collect(self):
        from dsl import SpecError, load_spec

        try:
            self.spec = load_spec(self.path)
        except SpecError as error:
            yield SpecItem.from_parent(self, name="build", check="error", message=str(error))
            return
        for check in CHECKS:
            yield SpecItem.from_parent(self, name=check, check=check)

    def ini(self, name: str) -> str:
        """An ini value, or fmnist_dsl.testing's default for the tolerances and the trajectory's length."""
        value = self.config.getini(name)
        if value in (None, "") and name in INI_OPTIONS:
            from fmnist_dsl import testing

            value = getattr(testing, INI_OPTIONS[name])
        return value

    @property
    def committed(self) -> Path:
        """Where the spec's committed package would be."""
        return Path(self.config.rootpath) / self.ini("fmnist_parity_generated") / self.spec.name

    def package(self):
        """The committed package if there is one, else the spec built into a temporary folder; once per file."""
        if not hasattr(self, "_package"):
            from compilers.project import build_and_import, import_package

            if (self.committed / "__init__.py").is_file():
                self._package = import_package(self.committed)
            else:
                self._package = build_and_import(self.path, Path(tempfile.mkdtemp(prefix="fmnist-parity-")))
        return self._package


class SpecItem(pytest.Item):
    """One check of one spec."""

    def __init__(self, *, check: str, message: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.check, self.message = check, message

    def runtest(self) -> None:
        if self.check == "error":
            raise ParityFailure(self.message)
        if self.check == "build":
            return self._check_build()
        from fmnist_dsl import testing

        spec_file: SpecFile = self.parent
        package, ini = spec_file.package(), spec_file.ini
        if self.check == "shapes":
            figure = testing.check_shapes(package)
        elif self.check == "forward":
            figure = testing.check_forward(package, float(ini("fmnist_parity_forward_tol")))
        elif self.check == "gradients":
            figure = testing.check_gradients(package, float(ini("fmnist_parity_gradient_tol")))
        else:
            steps, tolerance = int(ini("fmnist_parity_trajectory_steps")), float(ini("fmnist_parity_trajectory_tol"))
            figure = testing.check_trajectory(package, steps, tolerance)
        if not figure.ok:
            raise ParityFailure(str(figure))

    def _check_build(self) -> None:
        from compilers.project import build_packages, stale_files

        spec_file: SpecFile = self.parent
        packages = build_packages([self.path])
        if spec_file.committed.is_dir():
            diffs = stale_files(packages, spec_file.committed.parent)
            if diffs:
                stale = sorted({line.split()[1] for diff in diffs for line in diff.splitlines()[:1]})
                raise ParityFailure(
                    f"{spec_file.committed} is not what {self.path.name} generates: {', '.join(stale)} differ; "
                    f"regenerate with: fmnist-dsl build {self.path} --out {spec_file.committed.parent}"
                )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ParityFailure):
            return f"{self.nodeid}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"
