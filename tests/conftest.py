"""Settings every tier shares. Importing this loads no framework: the unit tier runs without one."""

import functools
import os
import re
import signal
from collections import Counter
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
from runtime.common import data  # noqa: E402  (numpy only: no framework)

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.yaml"))
# What TensorFlow itself prints when it starts on a CPU where it turns oneDNN on (AVX-512 BF16 and newer), whatever
# TF_CPP_MIN_LOG_LEVEL says: absl's notice, then one line per message logged before absl is set up.
TENSORFLOW_START_UP = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\])"
)

# Where a missing data set must be an error: a CI run that skipped every real-data test would be green and prove little.
IN_CI = os.environ.get("CI", "").lower() == "true"
NO_DATA = (
    f"real Fashion-MNIST not found (${data.ENV_VAR}, {data.DEBIAN_DIR} or the download cache {data.cache_dir()};"
    " `fmnist-dsl train` downloads it into the cache)"
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


@functools.cache
def real_data_dir() -> Path | None:
    """Where the real data set is on this machine, once per session (asked before any test redirects data's paths)."""
    return data.local_data_dir()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow (minutes each)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_data: the test reads the real Fashion-MNIST files; skipped (an error "
        "under CI=true) where runtime.common.data.local_data_dir finds none",
    )
    config.addinivalue_line(
        "markers",
        "slow: minutes on 2 cores, a tool's end-to-end smoke run; runs with --run-slow, skipped (and counted) else",
    )


@pytest.hookimpl(tryfirst=True)  # before the fixtures: a module's training fixture must not start without the data
def pytest_runtest_setup(item):
    if item.get_closest_marker("slow") is not None and not item.config.getoption("--run-slow"):
        pytest.skip("slow: runs with pytest --run-slow (the suite stays under 15 minutes on 2 cores)")
    if item.get_closest_marker("needs_data") is None or real_data_dir() is not None:
        return
    if IN_CI:
        pytest.fail(f"CI=true: {NO_DATA}", pytrace=False)
    pytest.skip(NO_DATA)


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """The folder holding the real files, for a test marked needs_data (the marker has checked that there is one)."""
    folder = real_data_dir()
    assert folder is not None, "mark the test needs_data"
    return folder


def skip_reason(report) -> str:
    """The reason a skipped test gave (pytest keeps it as (file, line, "Skipped: reason"), also across xdist)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple | list) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter):
    """How many tests were skipped and why, one line per reason, whatever -q or -n say."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if report.when != "teardown"]
    terminalreporter.write_sep("-", f"{len(skipped)} skipped")
    for reason, count in sorted(Counter(map(skip_reason, skipped)).items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"{count:4d}  {reason}")
