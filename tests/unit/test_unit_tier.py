"""The unit tier loads no framework: importing every module of it, in a fresh process, leaves none in sys.modules."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.unit.conftest import FRAMEWORKS

HERE = Path(__file__).resolve().parent
# Imports each module named on the command line and prints the frameworks that came with it.
CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(" ".join(f for f in FRAMEWORKS if f in sys.modules))
"""


def frameworks_loaded(modules: list[str], extra_path: str = "") -> list[str]:
    """The frameworks importing `modules` loads, in a fresh process run from the repository root."""
    code = f"FRAMEWORKS = {FRAMEWORKS!r}\n{CHECK}"
    env_path = [extra_path] if extra_path else []
    command = [sys.executable, "-c", f"import sys; sys.path[:0] = {env_path!r}\n{code}", *modules]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def unit_modules() -> list[str]:
    shared = ["tests.conftest", "tests.recipes", "fmnist_dsl.strategies"]
    return shared + [f"tests.unit.{path.stem}" for path in sorted(HERE.glob("*.py"))]


def test_no_unit_module_imports_a_framework():
    modules = unit_modules()
    assert "tests.unit.test_data" in modules and "tests.unit.conftest" in modules
    assert frameworks_loaded(modules) == []


def test_the_check_sees_a_module_that_imports_one(tmp_path):
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text("")  # a stand-in: the real one takes seconds to import
    (tmp_path / "heavy_test.py").write_text("import json\nimport keras\n")
    assert frameworks_loaded(["tests.unit.test_unit_tier", "heavy_test"], str(tmp_path)) == ["keras"]
