"""--replicas N: the case both frameworks' proofs train, and the refusals that come before any process starts.

The proofs: test_replicas_torch.py (processes over gloo) and test_replicas_keras.py (MirroredStrategy).
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.common import data as fmnist
from runtime.common import replicas
from tests.conftest import REPO, TENSORFLOW_START_UP

# BatchNorm after a Conv2D and after a Dense; dropout at rate 0, so every replica count draws the same (no) mask.
SPEC = """
name: replicated
input: [28, 28, 1]
layers:
  - Conv2D: {filters: 2, kernel_size: 4, strides: 4, use_bias: false}
  - BatchNorm: {}
  - Activation: {name: relu}
  - Flatten: {}
  - Dense: {units: 8, use_bias: false}  # a bias before BatchNorm has no gradient: Adam would amplify its noise
  - BatchNorm: {}
  - Activation: {name: relu}
  - Dropout: {rate: 0.0}
  - Dense: {units: 10, activation: softmax}
training:
  optimizer: {name: sgd}
  batch_size: 8
"""
OPTIMIZERS = {
    "sgd-nesterov": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
    "adam": {"name": "adam", "learning_rate": 0.01},
}
COUNT, BATCH, EPOCHS, TOLERANCE = 32, 8, 2, 1e-10


def splits(count: int = COUNT) -> fmnist.Splits:
    """float64 images the model's size: a float64 model trains on them in float64."""
    rng = np.random.default_rng(0)
    x, y = rng.random((count, 28, 28, 1)), rng.integers(0, 10, count)
    return fmnist.Splits(x, y, x[:16], y[:16], x[16:], y[16:])


def build_replicated(folder: Path):
    """SPEC's package, built and imported from `folder`."""
    from compilers.project import build_and_import

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "replicated.yaml").write_text(SPEC)
    return build_and_import(folder / "replicated.yaml", folder / "out")


def test_the_last_batch_is_cut_to_equal_parts():
    batches = [np.arange(8), np.arange(8, 13)]
    assert [len(b) for b in replicas.trim(batches, 2)] == [8, 4]
    assert [len(b) for b in replicas.trim(batches, 1)] == [8, 5]  # one replica drops nothing
    assert replicas.trained_count(13, 8, 2) == 12 and replicas.trained_count(13, 8, 1) == 13
    np.testing.assert_array_equal(replicas.share(np.arange(8), 1, 2), [4, 5, 6, 7])  # contiguous halves


TOO_MANY = str(replicas.cores() * 2)


CASES = {
    "below-1": (["--replicas", "0"], "argument --replicas: 0 is not at least 1"),
    "not-dividing": (["--replicas", "3"], "3 does not divide the global batch_size 32"),
    "more-than-cores": (["--replicas", TOO_MANY, "--batch-size", str(int(TOO_MANY) * 8)], f"{TOO_MANY} replicas, but"),
}


def _refused(argv: list[str], expected: str, run_dir: Path, ignored: re.Pattern | None = None) -> None:
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if not (ignored and ignored.match(line))]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_replica_counts_exit_2_with_one_line_and_write_nothing(case, tmp_path):
    flags, expected = CASES[case]
    run_dir = tmp_path / "run"
    _refused(["-m", "compilers.cli", "train", "specs/mlp.yaml", "--run-dir", str(run_dir), *flags], expected, run_dir)


def test_a_generated_script_refuses_the_same_way(tmp_path):
    """The generated script is a plain Keras program: TensorFlow's own start-up lines may come before its one line."""
    flags, expected = CASES["not-dividing"]
    run_dir = tmp_path / "run"
    script = ["-m", "generated.mlp.train_keras", "--run-dir", str(run_dir), *flags]
    _refused(script, expected, run_dir, ignored=TENSORFLOW_START_UP)
