"""Unit tier: an epoch's files appear together or not at all, whatever step a SIGKILL lands on.

A forked child publishes three epochs of three files and is killed just before its Nth rename, replace or rmdir in
the run folder (or in the middle of writing a file); the parent then does what the next start does (`recover`) and
reads the files back. A naive publisher, one atomic file after another, fails the same check.
"""

import os
import signal
from pathlib import Path

import pytest

from runtime.common import rundir

NAMES = ("model", "checkpoint", "history.json")
EPOCHS = 3


def _writer(epoch: int, name: str, kill_in_write: bool):
    def write(path: Path) -> None:
        path.write_text(f"{epoch} ")
        if kill_in_write:
            os.kill(os.getpid(), signal.SIGKILL)
        with path.open("a") as file:
            file.write("done")

    return write


def _naive_publish(run_dir: Path, files: dict) -> None:
    """The planted bug: each file atomic on its own, so a kill between two leaves epochs mixed."""
    for name, write in files.items():
        rundir.replace_atomically(run_dir / name, write)


def _killed_child(run_dir: Path, publish, kill_at: int | None, kill_in_write: tuple[int, str] | None) -> int:
    """Publish EPOCHS epochs in a forked child killed before its kill_at-th step; the number of steps it made."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        steps = 0
        for name in ("rename", "replace", "rmdir"):
            original = getattr(os, name)

            def counted(*args, _original=original, **kwargs):
                nonlocal steps
                if Path(os.fsdecode(args[0])).is_relative_to(run_dir):
                    steps += 1
                    if steps == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                return _original(*args, **kwargs)

            setattr(os, name, counted)
        for epoch in range(1, EPOCHS + 1):
            publish(run_dir, {name: _writer(epoch, name, kill_in_write == (epoch, name)) for name in NAMES})
        os.write(write, str(steps).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        made = pipe.read()
    os.waitpid(pid, 0)
    return int(made) if made else -1


def _state(run_dir: Path) -> set[str]:
    """The epochs the files hold once recovered; one value when they agree. Leftovers count as a disagreement."""
    rundir.recover(run_dir)
    left = [path.name for path in run_dir.iterdir() if path.name not in NAMES]
    texts = {(run_dir / name).read_text() if (run_dir / name).exists() else "missing" for name in NAMES}
    return texts | ({f"leftover {left}"} if left else set())


def _kill_everywhere(tmp_path: Path, publish) -> dict[str, set[str]]:
    """The recovered state after a kill at every step and in the middle of every write; keyed by where."""
    total = _killed_child(_mkdir(tmp_path / "whole"), publish, None, None)
    states = {}
    for kill_at in range(1, total + 1):
        folder = _mkdir(tmp_path / f"step-{kill_at}")
        _killed_child(folder, publish, kill_at, None)
        states[f"before step {kill_at}"] = _state(folder)
    for epoch in range(1, EPOCHS + 1):
        for name in NAMES:
            folder = _mkdir(tmp_path / f"write-{epoch}-{name}")
            _killed_child(folder, publish, None, (epoch, name))
            states[f"writing epoch {epoch}'s {name}"] = _state(folder)
    return states


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_a_kill_anywhere_leaves_one_whole_epoch(tmp_path):
    states = _kill_everywhere(tmp_path, rundir.publish)
    assert len(states) == EPOCHS * (1 + len(NAMES) + 1) + EPOCHS * len(NAMES), "per epoch a commit, moves, an rmdir"
    mixed = {where: state for where, state in states.items() if len(state) != 1}
    assert not mixed
    epochs = {next(iter(state)) for state in states.values()}
    assert epochs == {"missing", "1 done", "2 done", "3 done"}, "every epoch lost or kept whole, never half written"


def test_the_check_fails_on_a_naive_publisher(tmp_path):
    states = _kill_everywhere(tmp_path, _naive_publish)
    assert any(len(state) != 1 for state in states.values()), "a kill between two files mixes epochs"


def test_a_failed_write_names_the_file_and_keeps_the_last_epoch(tmp_path):
    rundir.publish(tmp_path, {name: _writer(1, name, False) for name in NAMES})

    def full(path: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(rundir.RunDirError) as failed:
        rundir.publish(tmp_path, {"model": _writer(2, "model", False), "checkpoint": full})
    assert str(failed.value) == (
        f"{tmp_path / 'checkpoint'}: cannot be written ([Errno 28] No space left on device);"
        " the last complete epoch is kept"
    )
    assert _state(tmp_path) == {"1 done"}
