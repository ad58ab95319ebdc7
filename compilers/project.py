"""Build spec files into packages on disk: all or nothing, byte for byte, with a check mode."""

import difflib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compilers.lowering import lower
from compilers.render import render_package, render_standalone
from compilers.standalone import unsupported
from dsl import SpecError, load_spec


@dataclass(frozen=True)
class BuiltPackage:
    """One spec's generated files, not yet written."""

    name: str
    files: dict[str, str]


def build_packages(spec_paths: list[Path], notebook: bool = False, standalone: bool = False) -> list[BuiltPackage]:
    """Load and render every spec (with `notebook`, each package's notebook.ipynb too; with `standalone`, the package
    that needs only its framework); raises SpecError before anything is written."""
    packages = []
    for path in spec_paths:
        model = lower(load_spec(path), Path(path).name)
        if standalone and (problem := unsupported(model)):
            raise SpecError(str(path), None, *problem)
        files = render_standalone(model) if standalone else render_package(model, notebook)
        packages.append(BuiltPackage(model.name, files))
    names = [package.name for package in packages]
    for path, name in zip(spec_paths, names):
        if names.count(name) > 1:
            raise SpecError(str(path), None, "name", f"{name!r} is the name of another spec: each name is one package")
    return packages


def write_packages(packages: list[BuiltPackage], out_dir: Path) -> list[Path]:
    """Write each package beside its destination, then swap it into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for package in packages:
        staging = Path(tempfile.mkdtemp(prefix=f".{package.name}-", dir=out_dir))
        for filename, text in package.files.items():
            (staging / filename).write_text(text, encoding="utf-8", newline="\n")
        target = out_dir / package.name
        _swap_into_place(staging, target)
        written.append(target)
    return written


def _swap_into_place(staging: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}-old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def stale_files(packages: list[BuiltPackage], out_dir: Path) -> list[str]:
    """A unified diff for every generated file that differs from what is on disk."""
    diffs = []
    for package in packages:
        for filename, text in package.files.items():
            path = out_dir / package.name / filename
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                lines = difflib.unified_diff(
                    current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), f"{path} (from spec)"
                )
                diffs.append("".join(lines))
    return diffs


def import_package(package_dir: Path):
    """Import a generated package from its folder, under its own name, as `import <name>` would."""
    import importlib.util
    import sys

    name = package_dir.name
    for stale in [module for module in sys.modules if module == name or module.startswith(f"{name}.")]:
        del sys.modules[stale]  # a package rebuilt under the same name must not reuse old submodules
    spec = importlib.util.spec_from_file_location(name, package_dir / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_and_import(spec_path: Path, out_dir: Path):
    """Build one spec into `out_dir` and import its package."""
    return import_package(write_packages(build_packages([spec_path]), out_dir)[0])
