"""Unit tier: a spec that cannot train is refused when it loads, located by line, and its neighbour that can is not."""

import subprocess
import sys

import pytest

from compilers.lowering import normalized_json
from dsl import SpecError, parse_spec
from dsl.document import MAX_NODES
from tests.conftest import REPO

LENET = (REPO / "specs" / "lenet5.yaml").read_text()
MLP_ADAM = (REPO / "specs" / "mlp_adam.yaml").read_text()
NO_TRAINING = "name: a\ninput: [32, 32, 3]\nlayers:\n  - Flatten: {}\n  - Dense: {units: 10}\n"


def refusal(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yaml")
    return caught.value


# (edit of lenet5.yaml, line, field, part of the message); each names what it refuses.
REFUSED = {
    "input not Fashion-MNIST's": (("[28, 28, 1]", "[32, 32, 3]"), 3, "input", "Received: [32, 32, 3]"),
    "grey input given as colour": (("[28, 28, 1]", "[28, 28, 3]"), 3, "input", "[28, 28, 1]"),
    "split beyond 60,000": (
        ("validation_split: 0.1", "split: {train: 50000, val: 9000, test: 1001}"),
        17,
        "training.split",
        "60,001 is more than the 60,000 training images",
    ),
    "split beside validation_split": (
        ("epochs: 20", "epochs: 20\n  split: {train: 5000, val: 900, test: 900}"),
        18,
        "training.validation_split",
        "not both",
    ),
    "batch larger than the training images": (
        ("batch_size: 128", "batch_size: 54001"),
        15,
        "training.batch_size",
        "larger than the 54,000 training images",
    ),
    "early stopping without validation": (
        ("validation_split: 0.1", "early_stopping: {patience: 2}"),
        17,
        "training.early_stopping",
        "early stopping monitors the validation loss",
    ),
    "plateau schedule without validation": (
        ("validation_split: 0.1\n  schedule: {name: cosine}", "schedule: {name: reduce_on_plateau}"),
        17,
        "training.schedule",
        "reduce_on_plateau monitors the validation loss",
    ),
    "validation share that rounds to no image": (
        ("validation_split: 0.1", "validation_split: 0.000001\n  early_stopping: {}"),
        18,
        "training.early_stopping",
        "no validation images",
    ),
    "a billion units": (
        ("units: 120", "units: 1000000000"),
        10,
        "layers[5].Dense",
        "raise the bound with `limits: {parameters: N}`",
    ),
    "units of 10**12": (("units: 84", "units: 1000000000000"), 11, "layers[6].Dense", "more than the bound"),
    "huge feature maps": (("filters: 6", "filters: 20000"), 5, "layers[0].Conv2D", "limits: {activations: N}"),
    "duplicate key": (("epochs: 20", "epochs: 20\n  epochs: 30"), 17, "training.epochs", "first given on line 16"),
    "duplicate key in a flow mapping": (
        ("units: 84,", "units: 84, units: 85,"),
        11,
        "layers[6].Dense.units",
        "duplicate key 'units'",
    ),
    "duplicate top-level key": (("name: lenet5", "name: lenet5\nname: other"), 3, "name", "duplicate key 'name'"),
    "infinite learning rate": (("learning_rate: 0.05", "learning_rate: .inf"), 14, "", "finite number"),
    "nan momentum": (("momentum: 0.9", "momentum: .nan"), 14, "", "finite number"),
    "bool for an int": (("batch_size: 128", "batch_size: true"), 15, "training.batch_size", "valid integer"),
    "string for an int": (("epochs: 20", 'epochs: "20"'), 16, "training.epochs", "valid integer"),
    "string for a float": (("learning_rate: 0.05", 'learning_rate: "0.05"'), 14, "", "valid number"),
    "float for an int": (("units: 84", "units: 84.0"), 11, "layers[6].Dense.units", "valid integer"),
    "int for a bool": (("nesterov: true", "nesterov: 1"), 14, "training.optimizer.nesterov", "valid boolean"),
    "bool inside a pair": (
        ("kernel_size: [5, 5]", "kernel_size: [true, 5]"),
        7,
        "layers[2].Conv2D.kernel_size[0]",
        "Received: True",
    ),
    "seed beyond 32 bits": (("epochs: 20", "epochs: 20\n  seed: 4294967296"), 17, "training.seed", "4294967295"),
    "integer of 5,000 digits": (("units: 84", "units: " + "9" * 5000), 11, "", "Exceeds the limit (4300 digits)"),
    "impossible date": (("name: lenet5", "name: !!timestamp 2020-13-45"), 2, "", "month must be in 1..12"),
    "python tag": (("name: lenet5", "name: !!python/object:os.system {}"), 2, "", "malformed YAML"),
    "alias containing itself": (("layers:", "x: &a [*a]\nlayers:"), 4, "x[0]", "an alias that contains itself"),
    "unknown lint code": (("name: lenet5", "name: lenet5\nlint: {ignore: [FM999]}"), 3, "lint.ignore[0]", "'FM101'"),
    "the standalone packages' folder as a name": (
        ("name: lenet5", "name: standalone"),
        2,
        "name",
        "standalone packages",
    ),
    **{
        f"random erasing with {what}": (
            (
                "schedule: {name: cosine}",
                f"schedule: {{name: cosine}}\n  augmentation:\n    random_erasing: {{{edit}}}",
            ),
            20,
            f"training.augmentation.random_erasing.{field}",
            part,
        )
        for what, edit, field, part in (
            ("scale bounds reversed", "scale: [0.4, 0.1]", "scale", "the low bound may not exceed the high"),
            ("an area over the image", "scale: [0.1, 1.5]", "scale[1]", "less than or equal to 1"),
            ("a zero ratio", "ratio: [0, 2]", "ratio[0]", "greater than 0"),
            ("probability 0", "probability: 0", "probability", "greater than 0"),
            ("a value off the pixel scale", "value: 255", "value", "less than or equal to 1"),
        )
    },
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_with_its_line_and_field(case):
    edit, line, field, part = REFUSED[case]
    assert edit[0] in LENET, "the edit applies"
    error = refusal(LENET.replace(*edit, 1))
    assert (error.line, error.field) == (line, field or error.field), str(error)
    assert part in error.message, str(error)


# The neighbours of the refusals above, each on the accepted side of the same boundary: (old, new, appended).
ACCEPTED = {
    "split of exactly 60,000": ("validation_split: 0.1", "split: {train: 50000, val: 9000, test: 1000}", ""),
    "batch of every training image": ("batch_size: 128", "batch_size: 54000", ""),
    "early stopping with a split": (
        "validation_split: 0.1",
        "split: {train: 900, val: 1, test: 1}\n  early_stopping: {}",
        "",
    ),
    "an int where a float goes": ("learning_rate: 0.05", "learning_rate: 1", ""),
    "a raised parameter bound": ("units: 84", "units: 1000000", "limits: {parameters: 1000000000}\n"),
    "the largest seed": ("epochs: 20", "epochs: 20\n  seed: 4294967295", ""),
    "a known lint code": ("name: lenet5", "name: lenet5\nlint: {ignore: [FM101]}", ""),
    "random erasing at its bounds": (
        "schedule: {name: cosine}",
        "schedule: {name: cosine}\n  augmentation:\n"
        "    random_erasing: {probability: 1, scale: [1, 1], ratio: [3, 3], value: 1}",
        "",
    ),
}


@pytest.mark.parametrize("case", ACCEPTED, ids=list(ACCEPTED))
def test_accepted_neighbour_loads(case):
    old, new, appended = ACCEPTED[case]
    assert old in LENET, "the edit applies"
    parse_spec(LENET.replace(old, new, 1) + appended)


def test_any_input_without_a_training_section():
    assert parse_spec(NO_TRAINING).input == (32, 32, 3)


def test_merge_keys_expand_but_a_repeated_key_does_not():
    text = "name: a\ninput: [8, 8, 1]\nlayers:\n  - Conv2D: {<<: {filters: 2}, kernel_size: 3}\n"
    assert parse_spec(text).layer_list()[0][1].filters == 2
    error = refusal(text.replace("kernel_size: 3", "kernel_size: 3, kernel_size: 2"))
    assert error.field == "layers[0].Conv2D.kernel_size" and error.line == 4


def test_aliases_that_expand_past_the_bound_are_refused_quickly():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    error = refusal("\n".join(levels) + "\n" + LENET)
    assert f"{MAX_NODES:,} YAML nodes" in error.message and error.line == 1


def test_lint_and_limits_do_not_change_the_normalised_spec():
    plain = parse_spec(LENET)
    marked = parse_spec(LENET + "lint: {ignore: [FM106]}\nlimits: {parameters: 100000, activations: 100000}\n")
    assert marked.lint.ignore == ("FM106",) and marked.limits.parameters == 100_000
    assert normalized_json(marked) == normalized_json(plain)


def test_refusal_through_the_command_exits_2_and_writes_nothing(tmp_path):
    spec = tmp_path / "dup.yaml"
    spec.write_text(MLP_ADAM.replace("epochs: 30", "epochs: 30\n  epochs: 40"))
    for command in (["build", str(spec), "--out", str(tmp_path / "out")], ["lint", str(spec)]):
        result = subprocess.run(
            [sys.executable, "-m", "compilers.cli", *command], capture_output=True, text=True, cwd=REPO, check=False
        )
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr
            == "fmnist-dsl: dup.yaml:26: training.epochs: duplicate key 'epochs' (first given on line 25)\n"
        )
        assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def build(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "compilers.cli", "build", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)


def test_standalone_refuses_what_its_scripts_cannot_train_and_writes_nothing(tmp_path):
    spec = tmp_path / "lenet5.yaml"
    spec.write_text(LENET.replace("epochs: 20", "epochs: 20\n  precision: bf16"))
    out = tmp_path / "out"
    assert build(str(spec), "--out", str(out)).returncode == 0  # the installed runtime trains it
    result = build("--standalone", str(spec), "--out", str(out / "standalone"))
    assert result.returncode == 2 and not (out / "standalone").exists()
    assert result.stderr == (
        f"fmnist-dsl: {spec}: training.precision: bf16: the standalone scripts train in float32;"
        " build it without --standalone\n"
    )
    result = build("--standalone", "--notebook", str(REPO / "specs" / "mlp.yaml"), "--out", str(out / "standalone"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--notebook" in result.stderr
    assert not (out / "standalone").exists()
