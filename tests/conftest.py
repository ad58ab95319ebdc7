"""Settings every tier shares. Importing this loads no framework: the unit tier runs without one."""

import os
import re
import signal
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest -n 2 runs one worker per core: more threads per worker oversubscribe the cores (10x slower steps).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits SIGINT ignored, and so would
# every process it starts: the Ctrl-C tests need it delivered as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from compilers.project import build_and_import  # noqa: E402
from dsl import parse_spec  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.yaml"))
# What TensorFlow itself prints when it starts on a CPU where it turns oneDNN on (AVX-512 BF16 and newer), whatever
# TF_CPP_MIN_LOG_LEVEL says: absl's notice, then one line per message logged before absl is set up.
TENSORFLOW_START_UP = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\])"
)

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def build_package(tmp_path):
    """Build spec text into a package under tmp_path and import it."""

    def build(text: str):
        spec_file = tmp_path / f"{parse_spec(text).name}.yaml"
        spec_file.write_text(text)
        return build_and_import(spec_file, tmp_path / "out")

    return build
