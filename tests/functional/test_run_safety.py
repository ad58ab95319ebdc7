"""Run folders are safe to resume and to share: through the real command, each refusal is one line and exit 2.

--resume continues only the run it names, one training at a time, and says which file is broken (the command run
in this process, which is faster); no file that `train --resume`, `evaluate` or `export` reads can run code: planted
files that do run code when loaded the unsafe way (the test shows it) run nothing in a fresh `fmnist-dsl` process.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compilers import cli as fmnist_dsl
from tests.conftest import REPO

pytestmark = pytest.mark.needs_data
TINY = ("--epochs", "1", "--train-limit", "300")
HOLDER = """
import sys, time
from pathlib import Path
from runtime.common import runlock
with runlock.hold(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(300)
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    """`fmnist-dsl ARGS` in a fresh process, from the repository root."""
    command = [sys.executable, "-m", "compilers.cli", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The one line a refusal prints; asserts exit 2, no traceback, nothing else on stderr."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    line = result.stderr.strip()
    assert line.startswith("fmnist-dsl: ") and "\n" not in line, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in line
    return line


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """`fmnist-dsl ARGS` run by this process, as the console script runs it."""
    capsys.readouterr()
    status = fmnist_dsl.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


def resume_args(spec: str, run_dir: Path, framework: str, *flags: str) -> tuple[str, ...]:
    return ("train", spec, "--framework", framework, *TINY, "--run-dir", str(run_dir), "--resume", *flags)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The MLP spec trained for one epoch on 300 images in both frameworks."""
    run_dir = tmp_path_factory.mktemp("run") / "mlp"
    assert fmnist_dsl.main(["train", "specs/mlp.yaml", *TINY, "--run-dir", str(run_dir), "--quiet"]) == 0
    return run_dir


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run to spoil."""
    shutil.copytree(trained, tmp_path / "mlp")
    return tmp_path / "mlp"


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != ".lock"}


def test_the_checkpoint_is_tensors_and_plain_values(trained):
    import torch

    state = torch.load(trained / "torch" / "checkpoint.pt", weights_only=True)  # what --resume loads
    assert state["epoch"] == 1 and isinstance(state["learning_rate"], float) and isinstance(state["stopped"], bool)


def test_resume_with_another_spec_is_refused_and_writes_nothing(run, capsys):
    before = contents(run / "torch")
    result = in_process(capsys, *resume_args("specs/mlp_adam.yaml", run, "torch"))
    refused(result, "was trained from spec 'mlp'", "this is 'mlp_adam'")
    assert contents(run / "torch") == before


def test_resume_with_another_recipe_is_refused_naming_the_change(run, capsys):
    result = in_process(capsys, *resume_args("specs/mlp.yaml", run, "keras", "--batch-size", "64"))
    assert "only epochs may change" in refused(result, "batch_size 32 -> 64")


def test_a_second_training_is_refused_naming_the_first(run, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run / "torch")], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = in_process(capsys, *resume_args("specs/mlp.yaml", run, "torch", "--epochs", "2"))
        refused(result, f"pid {holder.pid} on ")
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((run / "torch" / "history.json").read_text())[-1]["epoch"] == 1


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    path.write_text('{"epoch": 1, "be')


@pytest.mark.parametrize(
    ("framework", "name", "spoil"),
    [
        ("torch", "checkpoint.pt", _truncate),
        ("torch", "history.json", _garble),
        ("keras", "state.json", _garble),
        ("keras", "optimizer.npz", _truncate),
        ("keras", "model.keras", _truncate),
    ],
)
def test_a_broken_file_on_resume_is_named(run, capsys, framework, name, spoil):
    spoil(run / framework / name)
    result = in_process(capsys, *resume_args("specs/mlp.yaml", run, framework))
    refused(result, f"{run / framework / name}: cannot be read back")


class Planted:
    """Unpickled, it writes the canary: the classic payload of a shared checkpoint."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return exec, (f"open({str(self.canary)!r}, 'w').close()",)


def plant_torch(path: Path, canary: Path) -> None:
    """A checkpoint that runs code when unpickled, and proof that it does when loaded the unsafe way."""
    import torch

    torch.save({"epoch": 1, "model": Planted(canary)}, path)
    torch.load(path, weights_only=False)
    assert canary.exists()
    canary.unlink()


def plant_keras(path: Path, canary: Path) -> None:
    """A .keras model whose Lambda runs code when the model is rebuilt, and proof that it does without safe_mode."""
    import keras

    payload = eval(f"lambda x: (open({str(canary)!r}, 'w').close(), x)[1]")  # noqa: S307 -- the planted code
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(payload)]).save(path)
    canary.unlink()  # building it ran the payload once
    with pytest.raises(ValueError, match="Lambda"):
        keras.saving.load_model(path)  # safe_mode's refusal
    keras.saving.load_model(path, safe_mode=False)
    assert canary.exists()
    canary.unlink()


def test_a_planted_torch_checkpoint_runs_nothing(run, tmp_path):
    canary = tmp_path / "canary"
    plant_torch(run / "torch" / "checkpoint.pt", canary)
    plant_torch(run / "torch" / "model.pt", canary)
    why = "holds Python objects besides tensors and plain values (exec)"
    refused(
        cli(*resume_args("specs/mlp.yaml", run, "torch", "--epochs", "2")), f"{run / 'torch' / 'checkpoint.pt'}: ", why
    )
    refused(cli("evaluate", str(run)), f"{run / 'torch' / 'model.pt'}: refused: ", why)
    refused(cli("export", str(run / "torch"), "--to", "torch"), f"{run / 'torch' / 'model.pt'}: refused: ", why)
    assert not canary.exists()


def test_a_planted_keras_model_runs_nothing(run, tmp_path):
    canary = tmp_path / "canary"
    plant_keras(run / "keras" / "model.keras", canary)
    model_file = f"{run / 'keras' / 'model.keras'}: cannot be read back"
    refused(cli(*resume_args("specs/mlp.yaml", run, "keras", "--epochs", "2")), model_file)
    shutil.rmtree(run / "torch")  # evaluate then scores the keras run
    refused(cli("evaluate", str(run)), model_file)
    refused(cli("export", str(run / "keras"), "--to", "keras"), model_file)
    assert not canary.exists()
