"""Clean edges: Ctrl-C during training leaves the last complete epoch and says how to go on; no TensorFlow
start-up chatter in the CLI's output; compare prints its table once."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from dsl import exits
from runtime.common import interrupt
from tests.conftest import REPO

CLI = [sys.executable, "-m", "compilers.cli"]
LONG = ["--epochs", "50", "--train-limit", "2000"]
# The CLI's own silencing is under test: the test session's TF_CPP_MIN_LOG_LEVEL must not do it for it.
ENV = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"} | {"PYTHONPATH": str(REPO)}
CHATTER = re.compile(r"absl::InitializeLog|oneDNN|cpu_feature_guard|This TensorFlow binary|cuda|E0000|I0000|W0000")


def shown_lines(stderr: bytes) -> list[str]:
    """The lines a terminal would show: a carriage return (a progress bar's redraw) overwrites its line."""
    lines = (line.rsplit("\r", 1)[-1].strip() for line in stderr.decode("utf-8", "replace").split("\n"))
    return [line for line in lines if line]


def history(run_dir) -> list[dict]:
    path = run_dir / "history.json"
    return json.loads(path.read_text()) if path.exists() else []


def interrupt_after_an_epoch(command: list[str], run_dir, signum: int = signal.SIGINT) -> tuple[int, list[str]]:
    """Start training, send SIGINT (or signum) once history.json holds an epoch; returns the exit status and stderr's
    lines."""
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not history(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, shown_lines(stderr)


def assert_stopped_cleanly(
    status: int, lines: list[str], framework: str, run_dir, expected: int = exits.INTERRUPTED
) -> list[str]:
    """Exit 130 (or `expected`), one line naming the epoch after the saved ones; returns the --resume command."""
    assert status == expected, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    saved = history(run_dir)
    assert saved and f"stopped in {framework} epoch {len(saved) + 1} " in lines[0], (lines, len(saved))
    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert command[-1] == "--resume"
    return command


def resume_for_one_more_epoch(command: list[str], run_dir, program: list[str]) -> None:
    """Run the printed command (epochs cut to one more than saved) and check it continued the saved history."""
    before = history(run_dir)
    epochs = command.index("--epochs") + 1
    command[epochs] = str(len(before) + 1)
    result = subprocess.run(program + command, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    after = history(run_dir)
    assert len(after) == len(before) + 1 and after[: len(before)] == before


@pytest.mark.needs_data
def test_ctrl_c_in_torch_training(tmp_path):
    import torch

    run_dir = tmp_path / "torch"
    command = [*CLI, "train", "specs/mlp.yaml", "--framework", "torch", *LONG, "--run-dir", str(tmp_path)]
    resume = assert_stopped_cleanly(*interrupt_after_an_epoch(command, run_dir), "torch", run_dir)
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == len(history(run_dir))
    assert resume[:2] == ["fmnist-dsl", "train"]
    resume_for_one_more_epoch(resume[1:], run_dir, CLI)


@pytest.mark.needs_data
def test_ctrl_c_in_keras_training(tmp_path):
    import keras

    run_dir = tmp_path / "keras"
    command = [*CLI, "train", "specs/mlp.yaml", "--framework", "keras", *LONG, "--run-dir", str(tmp_path)]
    resume = assert_stopped_cleanly(*interrupt_after_an_epoch(command, run_dir), "keras", run_dir)
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == len(history(run_dir))
    assert keras.saving.load_model(run_dir / "model.keras", compile=False).count_params() > 0
    resume_for_one_more_epoch(resume[1:], run_dir, CLI)


@pytest.mark.needs_data
def test_ctrl_c_in_a_generated_training_script(tmp_path):
    run_dir = tmp_path / "torch"
    command = [sys.executable, "-m", "generated.mlp.train_torch", *LONG, "--run-dir", str(tmp_path)]
    resume = assert_stopped_cleanly(*interrupt_after_an_epoch(command, run_dir), "torch", run_dir)
    assert resume[:3] == ["python", "-m", "generated.mlp.train_torch"]


def test_ctrl_c_waits_for_the_files_of_an_epoch():
    """A SIGINT inside held() lands at its end, not between two files."""
    written = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.held():
            os.kill(os.getpid(), signal.SIGINT)
            written.append("checkpoint")
            written.append("history")
    assert written == ["checkpoint", "history"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert not CHATTER.findall(result.stderr), result.stderr[-3000:]


def test_parity_prints_no_tensorflow_start_up_lines():
    """(compare's run, quiet and its table printed once: tests/functional/test_training.py)"""
    parity = subprocess.run(
        [*CLI, "parity", "specs/mlp.yaml", "--steps", "2", "--no-real-data"], cwd=REPO, env=ENV, capture_output=True
    )
    assert_quiet(subprocess.CompletedProcess(parity.args, parity.returncode, parity.stdout, parity.stderr.decode()))


def test_the_chatter_pattern_sees_tensorflow_when_not_silenced():
    """Without the CLI's setting, importing TensorFlow here prints lines the pattern catches (where it prints any)."""
    result = subprocess.run([sys.executable, "-c", "import tensorflow"], env=ENV, capture_output=True, text=True)
    if not result.stderr.strip():
        pytest.skip("this TensorFlow build prints nothing at start-up on this machine")
    assert CHATTER.search(result.stderr), result.stderr
