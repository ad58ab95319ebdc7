"""Faults, through the real command: a kill at every step that publishes an epoch, SIGTERM and SIGHUP, a second
command into a run folder in use, and bad options, data, run folders and a full disk (one line, exit 2).

Small runs: the MLP on 300 images for 1-2 epochs. The kills are injected (tests/functional/fault_runner.py: SIGKILL
just before the Nth rename, replace or rmdir in the run folder), so each lands on its step every time.
"""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from compilers import cli as fmnist_dsl
from dsl import exits
from runtime.common.constants import FRAMEWORKS
from tests.conftest import REPO
from tests.functional.test_clean_edges import CLI, LONG, assert_stopped_cleanly, interrupt_after_an_epoch
from tests.functional.test_run_safety import contents, in_process, refused

pytestmark = pytest.mark.needs_data
TINY = ("--epochs", "1", "--train-limit", "300")
# What each framework's epoch publishes besides best.* (published when the epoch improved).
EPOCH_FILES = {
    "torch": {"model.pt", "checkpoint.pt", "history.json"},
    "keras": {"model.keras", "optimizer.npz", "state.json", "history.json"},
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_kill_at_every_publishing_step_resumes_to_the_whole_history(framework, tmp_path):
    command = [sys.executable, "-m", "tests.functional.fault_runner", framework, str(tmp_path)]
    run = subprocess.run([*command, "--epochs", "2", "--train-limit", "300"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["baseline_status"] == 0 and len(report["baseline"]) == 2
    _, second, final = report["commits"]  # epoch 1's, epoch 2's and the finished run's commit
    moved = {path.rsplit("/", 1)[1] for op, path in report["steps"][second : final - 1] if op == "replace"}
    assert EPOCH_FILES[framework] <= moved, "every file of the epoch is published by a step of its own"
    assert [kill["step"] for kill in report["kills"]] == list(range(second, final + 1))
    for kill in report["kills"]:
        where = f"killed before step {kill['step']} {kill['at']}"
        assert kill["killed_status"] == -signal.SIGKILL, where
        assert kill["resumed_status"] == 0 and kill["leftovers"] == [], where
        assert kill["history"][0] == report["baseline"][0] and len(kill["history"]) == 2, where
        if kill["step"] > second:  # epoch 2 was committed: the resumed run redoes nothing
            assert kill["history"] == report["baseline"], where
        else:  # epoch 2 was lost whole (its dropout masks drawn afresh when it is trained again)
            assert kill["epochs_after_kill"] == 1, where


def test_sigterm_stops_like_ctrl_c(tmp_path):
    run_dir = tmp_path / "torch"
    command = [*CLI, "train", "specs/mlp.yaml", "--framework", "torch", *LONG, "--run-dir", str(tmp_path)]
    stopped = interrupt_after_an_epoch(command, run_dir, signal.SIGTERM)
    resume = assert_stopped_cleanly(*stopped, "torch", run_dir, expected=exits.TERMINATED)
    assert resume[:2] == ["fmnist-dsl", "train"] and not list(run_dir.glob(".epoch-*"))


def test_sighup_stops_a_generated_script_like_ctrl_c(tmp_path):
    run_dir = tmp_path / "torch"
    command = [sys.executable, "-m", "generated.mlp.train_torch", *LONG, "--run-dir", str(tmp_path)]
    stopped = interrupt_after_an_epoch(command, run_dir, signal.SIGHUP)
    resume = assert_stopped_cleanly(*stopped, "torch", run_dir, expected=exits.HUNG_UP)
    assert resume[:3] == ["python", "-m", "generated.mlp.train_torch"]


def test_both_frameworks_hold_the_run_folder_for_the_whole_command(tmp_path, monkeypatch, capsys):
    """During `--framework both`'s Keras phase, a second command that would train PyTorch there is refused."""
    from runtime.keras import training

    intruders = []

    def intrude(*args, **kwargs):  # in place of Keras's training, once PyTorch's is done
        intruder = [*CLI, "train", "specs/mlp.yaml", "--framework", "torch", *TINY, "--run-dir", str(tmp_path)]
        intruders.append(subprocess.run(intruder, cwd=REPO, capture_output=True, text=True, timeout=600))
        return {}

    monkeypatch.setattr(training, "fit", intrude)
    first = ["train", "specs/mlp.yaml", "--framework", "both", *TINY, "--run-dir", str(tmp_path), "--quiet"]
    assert fmnist_dsl.main(first) == 0
    (intruder,) = intruders
    refused(intruder, f"{tmp_path} is being trained into by pid {os.getpid()} on ")
    files = contents(tmp_path / "torch")
    assert len(json.loads(files["history.json"])) == 1 and json.loads(files["run.json"])["status"] == "finished"


@pytest.mark.parametrize(
    "flags",
    [("--batch-size", "0"), ("--batch-size", "-4"), ("--train-limit", "0"), ("--seed", "-1"), ("--epochs", "0")],
)
def test_a_bad_option_is_one_line_and_writes_nothing(tmp_path, flags):
    result = subprocess.run(
        [*CLI, "train", "specs/mlp.yaml", "--run-dir", str(tmp_path / "run"), *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == exits.BAD_INPUT and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("fmnist-dsl train: argument ") and not (tmp_path / "run").exists()


def _data_copy(tmp_path: Path) -> Path:
    from runtime.common import data

    folder = tmp_path / "data"
    shutil.copytree(data.find_data_dir(download=False), folder)
    return folder


def _spoil_truncated(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])


def _spoil_random_labels(folder: Path) -> None:
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(range(256)) * 300))


def _spoil_missing(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()


@pytest.mark.parametrize("spoil", [_spoil_truncated, _spoil_random_labels, _spoil_missing])
def test_a_data_error_is_one_line_and_leaves_no_run_folder(tmp_path, capsys, spoil):
    data = _data_copy(tmp_path)
    spoil(data)
    run_dir = tmp_path / "runs" / "mlp"
    result = in_process(capsys, "train", "specs/mlp.yaml", *TINY, "--data-dir", str(data), "--run-dir", str(run_dir))
    refused(result, str(data))
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("faults") / "mlp"
    assert fmnist_dsl.main(["train", "specs/mlp.yaml", "--framework", "torch", *TINY, "--run-dir", str(run_dir)]) == 0
    return run_dir


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("run.json", "{}", "run.json: not what this program writes there: framework: Field required"),
        ("history.json", "[1]", "history.json: not what this program writes there: 0: Input should be"),
        ("metrics.json", "[]", "metrics.json: not what this program writes there: the file: Input should be"),
    ],
)
def test_evaluate_names_a_file_of_the_wrong_shape(trained, tmp_path, capsys, name, text, why):
    run = tmp_path / "mlp"
    shutil.copytree(trained, run)
    (run / "torch" / name).write_text(text)
    refused(in_process(capsys, "evaluate", str(run)), why)


def test_resume_refuses_a_history_of_non_records(trained, tmp_path, capsys):
    run = tmp_path / "mlp"
    shutil.copytree(trained, run)
    (run / "torch" / "history.json").write_text('["a"]')
    resume = ["train", "specs/mlp.yaml", "--framework", "torch", "--epochs", "2", "--train-limit", "300"]
    refused(in_process(capsys, *resume, "--run-dir", str(run), "--resume"), "history.json: not what this program")


def test_a_full_disk_names_the_file_and_keeps_the_last_epoch(tmp_path, capsys, monkeypatch):
    import errno

    import torch

    saves, save = [], torch.save

    def save_until_full(obj, path, *args, **kwargs):
        saves.append(path)
        if len(saves) > 3:  # epoch 1 saves best.pt, model.pt and checkpoint.pt; epoch 2's first save fails
            raise OSError(errno.ENOSPC, "No space left on device")
        save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    train = ["train", "specs/mlp.yaml", "--framework", "torch", "--epochs", "2", "--train-limit", "300"]
    line = refused(in_process(capsys, *train, "--run-dir", str(tmp_path)), "No space left on device")
    assert f"{tmp_path / 'torch' / Path(saves[3]).name}: cannot be written" in line and "last complete epoch" in line
    assert len(json.loads((tmp_path / "torch" / "history.json").read_text())) == 1
    assert not list((tmp_path / "torch").glob(".epoch-*"))
    monkeypatch.setattr(torch, "save", save)
    assert fmnist_dsl.main([*train, "--run-dir", str(tmp_path), "--resume", "--quiet"]) == 0
