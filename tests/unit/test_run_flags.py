"""The run flags, declared once (dsl.run_flags) for `fmnist-dsl train` and the generated scripts: what they parse to,
the command line they give back, and the Keras-only flag a PyTorch run refuses in one line."""

import argparse
import subprocess
import sys
import types

import pytest

from dsl import run_flags
from runtime.commands.train import run_options
from runtime.common.recipe import Recipe, parse_options
from tests.conftest import REPO
from tests.recipes import make_recipe

ARGV = [
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--seed",
    "7",
    "--data-dir",
    "d",
    "--run-dir",
    "r",
    "--train-limit",
    "64",
]
ARGV += ["--resume", "--precision", "bf16", "--jit-compile", "on", "--replicas", "2"]


def parsed(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_flags.add_run_flags(parser)
    return parser.parse_args(argv)


def test_the_command_line_given_back_parses_to_the_same_values():
    assert parsed(run_flags.to_argv(parsed(ARGV))) == parsed(ARGV)
    assert run_flags.to_argv(parsed([])) == []
    again = parsed(run_flags.to_argv(parsed(ARGV), seed=9, resume=False, jit_compile=None))
    assert (again.seed, again.resume, again.jit_compile, again.epochs) == (9, False, None, 3)


def test_each_flag_overrides_its_recipe_value_and_only_when_given():
    recipe = make_recipe(epochs=5, batch_size=32, seed=0)
    options = parse_options(["--epochs", "2", "--seed", "3"], recipe, "runs/x", framework="torch")
    assert (options.recipe.epochs, options.recipe.seed, options.recipe.batch_size) == (2, 3, 32)
    assert parse_options([], recipe, "runs/x", framework="torch").recipe == recipe


def test_a_pytorch_script_refuses_the_keras_only_flag_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_options(["--jit-compile", "on"], make_recipe(), "runs/x", framework="torch")
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].endswith(
        "--jit-compile is a Keras option (XLA); the PyTorch loop has none: leave it out"
    )
    assert parse_options(["--jit-compile", "on"], make_recipe(), "runs/x", framework="keras").jit_compile == "on"


def test_training_both_gives_the_keras_only_flag_to_keras_alone():
    package = types.SimpleNamespace(NAME="probe", RECIPE=_recipe_dict())
    args = parsed(["--jit-compile", "on"])
    chosen = run_options(args, package, ("torch", "keras"), loaded=False)
    assert (chosen["torch"].jit_compile, chosen["keras"].jit_compile) == ("auto", "on")


def _recipe_dict() -> dict:
    recipe = make_recipe()
    return {field: getattr(recipe, field) for field in Recipe.__dataclass_fields__}


def test_the_command_refuses_jit_compile_for_pytorch_before_anything_is_written(tmp_path):
    command = [sys.executable, "-m", "compilers.cli", "train", str(REPO / "specs/mlp.yaml"), "--framework", "torch"]
    command += ["--jit-compile", "on", "--run-dir", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "fmnist-dsl: --jit-compile is a Keras option (XLA); the PyTorch loop has none: leave it out\n"
    )
    assert not (tmp_path / "run").exists()


BAD_VALUES = {
    "--epochs 0": "argument --epochs: 0 is not at least 1",
    "--epochs -3": "argument --epochs: -3 is not at least 1",
    "--batch-size 0": "argument --batch-size: 0 is not at least 1",
    "--batch-size -4": "argument --batch-size: -4 is not at least 1",
    "--train-limit 0": "argument --train-limit: 0 is not at least 1",
    "--seed -1": "argument --seed: -1 is not from 0 to 4294967295",
    "--seed 4294967296": "argument --seed: 4294967296 is not from 0 to 4294967295",
    "--replicas 0": "argument --replicas: 0 is not at least 1",
    "--epochs two": "argument --epochs: 'two' is not a whole number",
    "--precision fp64": "argument --precision: invalid choice: 'fp64'",
}


@pytest.mark.parametrize(("flags", "message"), BAD_VALUES.items(), ids=BAD_VALUES.keys())
def test_a_bad_value_is_one_line_and_exit_2(capsys, flags, message):
    with pytest.raises(SystemExit) as refused:
        parse_options(flags.split(), make_recipe(), "runs/x", framework="torch")
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and message in err, err
