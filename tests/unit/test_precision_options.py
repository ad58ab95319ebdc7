"""The recipe's precision: the DSL field, the --precision flag over it, the deprecated alias, the device's refusal."""

import pytest

from dsl import SpecError, parse_spec
from runtime.common import precision
from runtime.common.recipe import Recipe, parse_options
from tests.recipes import SMALLEST_SPEC, make_recipe

CPU = (("float32", "tf32", "bf16"), "the CPU")


def test_the_spec_says_float32_unless_told():
    assert parse_spec(SMALLEST_SPEC).training.precision == "float32"
    assert parse_spec(SMALLEST_SPEC + "  precision: bf16\n").training.precision == "bf16"
    with pytest.raises(SpecError, match="precision"):
        parse_spec(SMALLEST_SPEC + "  precision: int8\n")


def test_flag_overrides_the_recipe(capsys):
    assert parse_options([], make_recipe(precision="bf16"), "runs/x", framework="torch").recipe.precision == "bf16"
    assert (
        parse_options(
            ["--precision", "float32"], make_recipe(precision="bf16"), "r", framework="torch"
        ).recipe.precision
        == "float32"
    )
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("alias", "meaning"), [("no", "float32"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_mixed_precision_is_a_deprecated_alias(capsys, alias, meaning):
    options = parse_options(["--mixed-precision", alias], make_recipe(precision="bf16"), "runs/x", framework="torch")
    assert options.recipe.precision == meaning
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"--mixed-precision is deprecated; use --precision {meaning}")


def test_alias_contradicting_the_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_options(["--mixed-precision", "no", "--precision", "bf16"], make_recipe(), "runs/x", framework="torch")
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--mixed-precision no contradicts --precision bf16")


@pytest.mark.parametrize("argv", [["--precision", "fp16"], []])
def test_a_precision_the_device_cannot_run_exits_2_in_one_line(capsys, argv):
    recipe = make_recipe(precision="fp16")  # from the spec or from the flag, the same refusal
    with pytest.raises(SystemExit) as stop:
        parse_options(argv, recipe, "runs/x", runnable=CPU, framework="torch")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "precision fp16: the CPU cannot run it; this machine can run float32, tf32, bf16"
    )
    assert (
        parse_options(["--precision", "bf16"], recipe, "runs/x", runnable=CPU, framework="torch").recipe.precision
        == "bf16"
    )


def test_check_raises_for_library_callers():
    precision.check("bf16", *CPU)
    with pytest.raises(precision.PrecisionError, match="can run float32, tf32, bf16"):
        precision.check("fp16", *CPU)


def test_a_run_folder_from_before_the_field_reads_as_float32():
    values = {k: v for k, v in make_recipe().__dict__.items() if k != "precision"}
    assert Recipe.from_dict(values).precision == "float32"


def test_tf32_without_tf32_computes_in_float32_and_says_so_in_one_line():
    assert precision.ran("tf32", True, "NVIDIA H200") == ("tf32", None)
    assert precision.ran("float32", True, "NVIDIA H200") == ("float32", None)
    assert precision.ran("bf16", False, "the CPU") == ("bf16", None)
    ran, line = precision.ran("tf32", False, "the CPU")
    assert ran == "float32"
    assert line == "precision tf32: the CPU has no TF32, so dots and convolutions compute in IEEE float32"


def test_tf32_is_a_spec_precision_and_runs_on_this_cpu():
    assert parse_spec(SMALLEST_SPEC + "  precision: tf32\n").training.precision == "tf32"
    assert (
        parse_options(
            ["--precision", "tf32"], make_recipe(), "runs/x", runnable=CPU, framework="torch"
        ).recipe.precision
        == "tf32"
    )
