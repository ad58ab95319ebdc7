"""The run folder's lock, with real processes: it names its holder, refuses a second one, dies with its holder."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from runtime.common import runlock
from tests.conftest import REPO

HOLDER = """
import sys, time
from pathlib import Path
from runtime.common import runlock
with runlock.hold(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path's lock until the test ends it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "--marker"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def assert_second_holder_refused(run_dir, holder) -> None:
    """The check of the first test: taking a lock another process holds raises one line naming that process."""
    with pytest.raises(runlock.RunLockedError) as refused, runlock.hold(run_dir):
        pass
    message = str(refused.value)
    assert f"pid {holder.pid} on {socket.gethostname()}" in message and "--marker" in message
    assert str(run_dir) in message and "\n" not in message
    assert isinstance(refused.value, OSError)  # what the CLI prints as one line, exit 2


def test_a_second_holder_is_refused_in_one_line_naming_the_first(tmp_path, holder):
    assert_second_holder_refused(tmp_path, holder)


def test_the_lock_dies_with_its_holder_and_is_taken_over(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
    holder.wait()
    with runlock.hold(tmp_path) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert lock.read_text() == ""  # released: no stale holder left to name


def test_the_same_process_can_take_it_again_after_releasing(tmp_path):
    for _ in range(2):
        with runlock.hold(tmp_path):
            pass


def test_with_a_planted_bug_the_second_holder_gets_in_which_the_first_test_catches(tmp_path, holder, monkeypatch):
    monkeypatch.setattr(runlock.fcntl, "flock", lambda fd, how: None)  # the bug: a flock that locks nothing
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        assert_second_holder_refused(tmp_path, holder)


def _no_flock(fd, how):
    raise OSError(errno.ENOLCK, "No locks available")


def test_without_flock_a_live_recorded_holder_keeps_it_and_a_dead_one_is_taken_over(tmp_path, holder, monkeypatch):
    monkeypatch.setattr(runlock.fcntl, "flock", _no_flock)
    with pytest.raises(runlock.RunLockedError, match=f"pid {holder.pid} "), runlock.hold(tmp_path):
        pass
    holder.kill()
    holder.wait()
    (tmp_path / runlock.LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
    with runlock.hold(tmp_path):
        pass
