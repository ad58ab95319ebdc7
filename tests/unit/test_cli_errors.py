"""Bad input through the real command: one clear line, exit status 2, no traceback, nothing written."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

LENET = (REPO / "specs" / "lenet5.yaml").read_text()


def build(tmp_path, *spec_texts: str) -> subprocess.CompletedProcess:
    paths = []
    for number, text in enumerate(spec_texts):
        path = tmp_path / f"spec{number}.yaml"
        path.write_text(text)
        paths.append(str(path))
    command = [sys.executable, "-m", "compilers.cli", "build", *paths, "--out", str(tmp_path / "out")]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("kernel_size: [5, 5]", "kernel_size: [5, 50]"), "spec0.yaml:7: layers[2].Conv2D.kernel_size: "),
        (("[28, 28, 1]", "[28, 28"), "spec0.yaml:4: malformed YAML"),
        (("units: 84", "units: -4"), "spec0.yaml:11: layers[6].Dense.units: "),
        (
            ("epochs: 20", "epochs: 20\n  augmentation: {random_erasing: {ratio: [3, 0.3]}}"),
            "spec0.yaml:17: training.augmentation.random_erasing.ratio: ",
        ),
    ],
)
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, edit, expected):
    result = build(tmp_path, LENET.replace(*edit))
    assert result.returncode == 2
    assert result.stderr.startswith(f"fmnist-dsl: {expected}") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_one_bad_spec_among_good_ones_writes_nothing(tmp_path):
    result = build(tmp_path, LENET, LENET.replace("name: lenet5", "name: other").replace("units: 120", "units: 0"))
    assert result.returncode == 2 and "spec1.yaml:10: layers[5].Dense.units" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_spec_file_is_bad_input(tmp_path):
    command = [sys.executable, "-m", "compilers.cli", "build", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 2 and "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_rebuild_replaces_package_atomically(tmp_path):
    assert build(tmp_path, LENET).returncode == 0
    stale = tmp_path / "out" / "lenet5" / "leftover.txt"
    stale.write_text("from an older build")
    assert build(tmp_path, LENET).returncode == 0
    assert not stale.exists() and (tmp_path / "out" / "lenet5" / "torch_model.py").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lenet5"]
