"""silence_tensorflow_start_up: what a `tensorflow` import writes to file descriptor 2 stays off the terminal.

A stand-in `tensorflow` package writes there as TensorFlow's C++ start-up does on an AVX-512 CPU, so the check runs
(and can fail) on any CPU, with no framework installed.
"""

import subprocess
import sys

from tests.conftest import REPO

STAND_IN = """
import os
os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\\n")
if os.environ.get("FAIL_IMPORT"):
    raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
"""

PROGRAM = """
import importlib.util, os, sys
from runtime.common.frameworks import silence_tensorflow_start_up
if sys.argv[1] == "silenced":
    silence_tensorflow_start_up()
assert importlib.util.find_spec("tensorflow") is not None  # a look before the import must not use the silencing up
try:
    import tensorflow
except ImportError as error:
    print(f"import failed: {error}", file=sys.stderr)
os.write(2, b"after the import\\n")
"""


def run(tmp_path, mode: str, fail_import: bool = False) -> list[str]:
    (tmp_path / "tensorflow").mkdir(exist_ok=True)
    (tmp_path / "tensorflow" / "__init__.py").write_text(STAND_IN)
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"} | ({"FAIL_IMPORT": "1"} if fail_import else {})
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    )
    return done.stderr.splitlines()


def test_the_stand_in_writes_its_line_when_nothing_silences_it(tmp_path):
    assert run(tmp_path, "loud") == ["I0000 port.cc:153] oneDNN custom operations are on", "after the import"]


def test_the_import_s_lines_are_hidden_and_stderr_comes_back(tmp_path):
    assert run(tmp_path, "silenced") == ["after the import"]


def test_a_failed_import_still_says_why(tmp_path):
    assert run(tmp_path, "silenced", fail_import=True) == [
        "import failed: libtensorflow_framework.so.2: cannot open shared object file",
        "after the import",
    ]
