"""Unit tier: each lint rule fires on a spec that has its problem and stays silent on the nearest one that does not."""

import re
import subprocess
import sys

import pytest

from dsl.codes import CODES
from dsl.lint import lint_text
from tests.conftest import REPO, SPECS

TRAINING = "training:\n  optimizer: {name: sgd}\n  batch_size: BATCH\n  validation_split: 0.1\n"


def spec(*layers: str, batch: int | None = None, training: str = "") -> str:
    """A spec on 28x28x1 with the given layer lines; with `batch`, a training section of that batch size and
    the `training` lines."""
    text = "name: a\ninput: [28, 28, 1]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)
    return text + (TRAINING.replace("BATCH", str(batch)) + training if batch else "")


def codes(text: str) -> list[str]:
    return [finding.code for finding in lint_text(text)]


HEAD = ("Flatten: {}",)
TAIL = ("Dense: {units: 10, activation: softmax}",)

# The header `fmnist-dsl import` writes (dsl.provenance), with a wrapped `training differs` line.
IMPORTED_HEADER = "# Imported by `fmnist-dsl import` from models.py:SmallCNN.\n"
DIFFERS = (
    "# training differs: layers[1]: layer 'bn1' (index 2, BatchNorm2d): PyTorch's BatchNorm tracks the unbiased\n"
    "#   running variance, the DSL the biased one: the imported inference is exact\n"
)

# code -> (a spec with the problem, its nearest neighbour without it)
CASES = {
    "FM101": (
        spec(*HEAD, "Dense: {units: 32}", "BatchNorm: {}", *TAIL),
        spec(*HEAD, "Dense: {units: 32, use_bias: false}", "BatchNorm: {}", *TAIL),
    ),
    "FM102": (
        spec(*HEAD, "Dense: {units: 32, activation: relu}", "Dropout: {rate: 0.2}", "BatchNorm: {}", *TAIL),
        spec(*HEAD, "Dense: {units: 32, activation: relu}", "BatchNorm: {}", "Dropout: {rate: 0.2}", *TAIL),
    ),
    "FM103": (
        spec(*HEAD, "Dense: {units: 10, activation: softmax}", "Dropout: {rate: 0.5}"),
        spec(*HEAD, "Dense: {units: 10}", "Dropout: {rate: 0.5}", "Activation: {name: softmax}"),
    ),
    "FM104": (
        spec(*HEAD, "Dense: {units: 32, activation: relu}", "Activation: {name: relu}", *TAIL),
        spec(*HEAD, "Dense: {units: 32}", "Activation: {name: relu}", *TAIL),
    ),
    "FM105": (
        spec("Conv2D: {filters: 4, kernel_size: 1, strides: 3}", *HEAD, *TAIL),
        spec("Conv2D: {filters: 4, kernel_size: 3, strides: 3, padding: same}", *HEAD, *TAIL),
    ),
    "FM106": (
        spec("Conv2D: {filters: 4, kernel_size: 3, strides: 2}", *HEAD, *TAIL),
        spec("Conv2D: {filters: 4, kernel_size: 4, strides: 2}", *HEAD, *TAIL),
    ),
    "FM107": (
        spec("Conv2D: {filters: 16, kernel_size: 3, padding: same}", *HEAD, "Dense: {units: 800}", *TAIL),
        spec("Conv2D: {filters: 16, kernel_size: 3, padding: same}", *HEAD, "Dense: {units: 797}", *TAIL),
    ),
    "FM108": (
        spec(*HEAD, "Dense: {units: 32, use_bias: false}", "BatchNorm: {}", *TAIL, batch=15),
        spec(*HEAD, "Dense: {units: 32, use_bias: false}", "BatchNorm: {}", *TAIL, batch=16),
    ),
    "FM109": (
        spec(*HEAD, *TAIL, batch=32, training="  epochs: 5\n  schedule: {name: step, step_size: 5}\n"),
        spec(*HEAD, *TAIL, batch=32, training="  epochs: 5\n  schedule: {name: step, step_size: 4}\n"),
    ),
    "FM110": (
        spec(*HEAD, *TAIL, batch=32, training="  epochs: 3\n  early_stopping: {patience: 3}\n"),
        spec(*HEAD, *TAIL, batch=32, training="  epochs: 4\n  early_stopping: {patience: 3}\n"),
    ),
    "FM111": (
        spec("Conv2D: {filters: 1, kernel_size: 3}", "LayerNorm: {}", *HEAD, *TAIL),
        spec("Conv2D: {filters: 2, kernel_size: 3}", "LayerNorm: {}", *HEAD, *TAIL),
    ),
    "FM112": (
        IMPORTED_HEADER + DIFFERS + spec(*HEAD, "BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}", *TAIL),
        IMPORTED_HEADER + spec(*HEAD, "BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}", *TAIL),
    ),
}

# The window and bias rules on the newer layers: (code, a spec with the problem, its nearest neighbour without it).
NEWER_LAYER_CASES = {
    "bias of a separable conv before BatchNorm": (
        "FM101",
        spec("SeparableConv2D: {filters: 4, kernel_size: 3}", "BatchNorm: {}", *HEAD, *TAIL),
        spec("SeparableConv2D: {filters: 4, kernel_size: 3, use_bias: false}", "BatchNorm: {}", *HEAD, *TAIL),
    ),
    "bias of a depthwise conv before BatchNorm": (
        "FM101",
        spec("DepthwiseConv2D: {kernel_size: 3}", "BatchNorm: {}", *HEAD, *TAIL),
        spec("DepthwiseConv2D: {kernel_size: 3, activation: relu}", "BatchNorm: {}", *HEAD, *TAIL),
    ),
    "average pool with gaps": (
        "FM105",
        spec("AvgPool: {pool_size: 2, strides: 3, padding: same}", *HEAD, *TAIL),
        spec("AvgPool: {pool_size: 3, strides: 3, padding: same}", *HEAD, *TAIL),
    ),
    "average pool dropping a row": (
        "FM106",
        spec("AvgPool: {pool_size: 3}", *HEAD, *TAIL),
        spec("AvgPool: {pool_size: 4}", *HEAD, *TAIL),
    ),
    "depthwise stride dropping a row": (
        "FM106",
        spec("DepthwiseConv2D: {kernel_size: 3, strides: 2}", *HEAD, *TAIL),
        spec("DepthwiseConv2D: {kernel_size: 4, strides: 2}", *HEAD, *TAIL),
    ),
}


@pytest.mark.parametrize("case", NEWER_LAYER_CASES, ids=list(NEWER_LAYER_CASES))
def test_rules_cover_the_newer_layers(case):
    code, with_problem, without = NEWER_LAYER_CASES[case]
    assert codes(with_problem) == [code], lint_text(with_problem)
    assert codes(without) == [], lint_text(without)


def test_a_plateau_schedule_that_never_acts():
    never = spec(*HEAD, *TAIL, batch=32, training="  epochs: 2\n  schedule: {name: reduce_on_plateau}\n")
    assert [str(finding) for finding in lint_text(never, "a.yaml")] == [
        "a.yaml:11: FM109 reduce_on_plateau's patience 2 is not below epochs 2: the rate never changes"
    ]
    assert codes(never.replace("epochs: 2", "epochs: 3")) == []


def test_every_code_has_a_case():
    assert sorted(CASES) == sorted(CODES)


@pytest.mark.parametrize("code", CASES)
def test_rule_fires_on_its_problem_only(code):
    with_problem, without = CASES[code]
    assert codes(with_problem) == [code], lint_text(with_problem)
    assert codes(without) == [], lint_text(without)


def test_findings_name_file_line_and_code():
    text = spec(*HEAD, "Dense: {units: 32}", "BatchNorm: {}", *TAIL)
    assert [str(finding) for finding in lint_text(text, "a.yaml")] == [
        "a.yaml:5: FM101 Dense's bias is cancelled by the BatchNorm after it: set use_bias: false"
    ]


def test_valid_window_reports_the_rows_it_drops():
    (finding,) = lint_text(spec("MaxPool: {pool_size: 2}", "MaxPool: {pool_size: 2}", "MaxPool: {pool_size: 2}", *HEAD))
    assert finding.code == "FM106" and finding.line == 6
    assert "on the 7x7 input never reads its last 1 row(s) and 1 column(s)" in finding.message


def test_ignore_silences_only_its_codes():
    text = spec(
        *HEAD, "Dense: {units: 32}", "Dropout: {rate: 0.2}", "BatchNorm: {}", "Dense: {units: 10}", "BatchNorm: {}"
    )
    assert codes(text) == ["FM102", "FM101"]
    assert codes(text + "lint: {ignore: [FM101]}\n") == ["FM102"]
    assert codes(text + "lint:\n  ignore: [FM102, FM101]\n") == []


def test_example_specs_are_clean():
    for path in SPECS:
        assert lint_text(path.read_text(), path.name) == [], path.name


def test_an_ignore_in_an_example_spec_says_why():
    for path in SPECS:
        text = path.read_text()
        if "lint:" in text:
            block = text[text.index("lint:") :]
            assert re.search(r"#.*FM\d{3}", block), f"{path.name}: say why each code is ignored"


def test_docs_explain_every_code_as_explain_does():
    docs = " ".join((REPO / "docs" / "lint.md").read_text().split())
    for code, entry in CODES.items():
        assert f"## {code}: {entry.title}" in docs
        assert " ".join(entry.explanation.split()) in docs, f"docs/lint.md's {code} paragraph differs from dsl/codes.py"


def fmnist(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "compilers.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)


def test_lint_command_exit_status(tmp_path):
    dirty, clean = tmp_path / "dirty.yaml", tmp_path / "clean.yaml"
    dirty.write_text(CASES["FM104"][0])
    clean.write_text(CASES["FM104"][1])
    assert fmnist("lint", str(clean)).returncode == 0
    result = fmnist("lint", str(clean), str(dirty))
    assert (result.returncode, result.stdout) == (
        1,
        "dirty.yaml:6: FM104 Activation relu directly after Dense's relu: two activations in a row\n",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(CASES["FM104"][0].replace("units: 32", "units: 0"))
    result = fmnist("lint", str(dirty), str(broken))
    assert result.returncode == 2 and "broken.yaml:5: layers[1].Dense.units" in result.stderr
    assert "FM104" in result.stdout and "Traceback" not in result.stderr


def test_explain_prints_the_paragraph_and_refuses_unknown_codes():
    result = fmnist("lint", "--explain", "FM105")
    assert result.returncode == 0 and result.stdout.startswith(f"FM105: {CODES['FM105'].title}\n")
    assert " ".join(result.stdout.split()[3:]).endswith(" ".join(CODES["FM105"].explanation.split()))
    result = fmnist("lint", "--explain", "FM199")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "FM199" in result.stderr


def test_build_warns_on_stderr_and_still_builds(tmp_path):
    (tmp_path / "a.yaml").write_text(CASES["FM101"][0])
    result = fmnist("build", "a.yaml", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr
        == "warning: a.yaml:5: FM101 Dense's bias is cancelled by the BatchNorm after it: set use_bias: false\n"
    )
    assert (tmp_path / "out" / "a" / "torch_model.py").exists()


def test_an_imported_layer_is_found_on_its_line():
    text = IMPORTED_HEADER + DIFFERS + spec(*HEAD, "BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}", *TAIL)
    assert [str(finding) for finding in lint_text(text, "a.yaml")] == [
        "a.yaml:8: FM112 trains differently from the imported source's layer 'bn1' (index 2, BatchNorm2d): PyTorch's "
        "BatchNorm tracks the unbiased running variance, the DSL the biased one"
    ]
