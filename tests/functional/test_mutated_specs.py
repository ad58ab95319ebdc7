"""Functional tier: a mutated example spec either is refused as one SpecError, or builds, constructs in both
frameworks and takes a training step in each."""

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from compilers.project import build_packages, import_package, write_packages
from dsl import SpecError
from tests.conftest import SPECS

TEXTS = {path.name: path.read_text() for path in SPECS}
# A scalar value after `key: ` in block or flow style, up to the next separator.
VALUE = re.compile(r"(?<=: )[^,{}\[\]\n#]+")
EXTREMES = [
    "0", "-1", "1", "2", "2147483648", "1000000000000", "1" + "0" * 100, "1e-300", "1e300", ".inf", "-.inf", ".nan",
    "true", "false", "null", "'12'", "[]", "{}", "[1, 2, 3]", "~", "*undefined", "!!python/name:os.system",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(EXTREMES),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=12),
)


@st.composite
def mutated_specs(draw) -> str:
    """An example spec with one to three edits: values retyped or extreme, lines dropped or given twice, text added."""
    text = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines(keepends=True)
        kind = draw(st.sampled_from(["value", "value", "drop line", "repeat line", "drop key", "insert"]))
        if kind == "value" and (matches := list(VALUE.finditer(text))):
            match = draw(st.sampled_from(matches))
            text = text[: match.start()] + draw(VALUES) + text[match.end() :]
        elif kind in ("drop line", "repeat line"):
            index = draw(st.integers(0, len(lines) - 1))
            lines[index : index + 1] = [] if kind == "drop line" else [lines[index]] * 2
            text = "".join(lines)
        elif kind == "drop key" and (keys := list(re.finditer(r"\w+: [^,{}\n]+, ", text))):
            match = draw(st.sampled_from(keys))
            text = text[: match.start()] + text[match.end() :]
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
    return text


def one_step_each(package) -> None:
    """Construct the package's models and take one SGD step in each on a tiny random batch; the loss stays finite."""
    import torch

    height, width, channels = package.INPUT_SHAPE
    images = np.random.default_rng(0).random((2, height, width, channels), dtype=np.float32)
    model = package.build_torch_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    output = model(torch.from_numpy(images).permute(0, 3, 1, 2))
    loss = output.square().mean()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    keras_model = package.build_keras_model()
    keras_model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    target = np.zeros((2, *keras_model.output_shape[1:]), dtype=np.float32)
    assert np.isfinite(keras_model.train_on_batch(images, target))


@settings(max_examples=25)
@given(mutated_specs())
def test_mutated_spec_is_refused_cleanly_or_trains(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("mutated")
    (folder / "spec.yaml").write_text(text, encoding="utf-8")
    try:
        packages = build_packages([folder / "spec.yaml"])
    except SpecError as error:
        assert str(error).startswith("spec.yaml") and "\n" not in str(error)
        event("refused")
        return
    event("built")
    one_step_each(import_package(write_packages(packages, folder / "out")[0]))


LENET = TEXTS["lenet5.yaml"]
# Through the real command: the one-line error and its status, never a traceback, nothing written.
CLI_CASES = {
    "duplicate key": LENET.replace("epochs: 20", "epochs: 20\n  epochs: 21"),
    "string for a number": LENET.replace("batch_size: 128", "batch_size: '128'"),
    "nan learning rate": LENET.replace("learning_rate: 0.05", "learning_rate: .nan"),
    "binary garbage": "\x00\x01name: [\ufffe",
    "nested too deeply": "name: " + "[" * 600 + "]" * 600,
}


@pytest.mark.parametrize("text", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_refused_through_the_command(tmp_path, text):
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "compilers.cli", "build", "spec.yaml", "--out", "out"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("fmnist-dsl: spec.yaml") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()
