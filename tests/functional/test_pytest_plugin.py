"""The pytest plugin, as a user runs it: a fresh project outside this repository, `pytest --fmnist-parity`."""

import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """\
name: tiny_bn
input: [8, 8, 1]
layers:
  - Conv2D: {filters: 3, kernel_size: 3, activation: relu}
  - BatchNorm: {}
  - Flatten: {}
  - Dense: {units: 10, activation: softmax}
"""
BROKEN = SPEC.replace("name: tiny_bn", "name: broken").replace("kernel_size: 3", "kernel_size: 30")
BIAS_BEFORE_BATCHNORM = Path(__file__).parent / "specs" / "bias_before_batchnorm.yaml"  # valid: its models are equal
PYTEST_INI = "[pytest]\nfmnist_parity_trajectory_steps = 5\n"
CHECKS = ("build", "shapes", "forward", "gradients", "trajectory")


def run_pytest(project: Path, *paths: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "--fmnist-parity", "-p", "no:xdist", "-p", "no:cacheprovider", "-rA"]
    return subprocess.run([*command, *paths], cwd=project, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two specs with their committed generated packages, a pytest.ini and a YAML file that is not a spec."""
    project = tmp_path_factory.mktemp("user-project")
    (project / "pytest.ini").write_text(PYTEST_INI)
    (project / "specs").mkdir()
    (project / "specs" / "model.yaml").write_text(SPEC)
    (project / "specs" / "bias.yaml").write_text(BIAS_BEFORE_BATCHNORM.read_text())
    (project / "specs" / "settings.yaml").write_text("layers_of_paint: 3\nname: not a spec\n")
    build = [
        sys.executable,
        "-m",
        "compilers.cli",
        "build",
        "specs/model.yaml",
        "specs/bias.yaml",
        "--out",
        "generated",
    ]
    subprocess.run(build, cwd=project, check=True, capture_output=True)
    return project


def outcomes(result: subprocess.CompletedProcess) -> dict[str, str]:
    """`specs/model.yaml::forward` -> PASSED or FAILED, from pytest's -rA summary."""
    found = {}
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            found[rest.split(" ")[0]] = word
    return found


def _edit(path: Path, old: str, new: str) -> None:
    edited = path.read_text().replace(old, new)
    assert edited != path.read_text()
    path.write_text(edited)


def test_every_item_passes_then_edited_batchnorms_fail_naming_where(project: Path):
    result = run_pytest(project, "specs")
    assert result.returncode == 0, result.stdout[-3000:]
    expected = {f"specs/{spec}::{check}": "PASSED" for spec in ("model.yaml", "bias.yaml") for check in CHECKS}
    assert outcomes(result) == expected  # settings.yaml skipped; bias.yaml's Adam trains a bias BatchNorm cancels

    _edit(project / "generated" / "tiny_bn" / "torch_model.py", "eps=0.001", "eps=1e-05")
    _edit(project / "generated" / "bias_before_batchnorm" / "torch_model.py", "momentum=0.01", "momentum=0.02")
    result = run_pytest(project, "specs")
    assert result.returncode == 1
    found = outcomes(result)
    assert found["specs/model.yaml::build"] == "FAILED" and found["specs/model.yaml::forward"] == "FAILED", found
    assert found["specs/model.yaml::shapes"] == "PASSED"
    assert "torch_model.py" in result.stdout and "eval forward, max absolute difference" in result.stdout
    assert "tolerance of 1.0e-05" in result.stdout and "worst: from layer bn1" in result.stdout
    assert found["specs/bias.yaml::trajectory"] == "FAILED" and found["specs/bias.yaml::forward"] == "PASSED", found
    assert "(worst: bn1.moving_mean, first over the tolerance after step 1): FAILED" in result.stdout


def test_a_broken_spec_is_one_failing_item_with_its_location(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    result = run_pytest(tmp_path, ".")
    assert result.returncode == 1
    assert outcomes(result) == {"broken.yaml::build": "FAILED"}
    assert "broken.yaml:4: layers[0].Conv2D.kernel_size: 30 is larger than the 8x8 input" in result.stdout
    assert "Traceback" not in result.stdout


def test_off_unless_asked_for(project: Path):
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "specs"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 5, result.stdout[-2000:]  # no tests collected: spec files are not tests by default
