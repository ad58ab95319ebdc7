"""One training at a time per run folder: a lock file that names its holder and dies with it.

The lock is an flock on RUN_DIR/.lock, which the kernel releases when the holding process ends however it ends
(crash, SIGKILL), so a dead holder never needs cleaning up. The file itself only says who holds the lock (pid,
host, command, start time), for the refusal message. Where a file system cannot flock, the recorded holder is
trusted while its pid is alive on this host and taken over otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from runtime.common.rundir import RunDirError

LOCK_NAME = ".lock"
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class RunLockedError(RunDirError):
    """Another process is training into the same run folder."""


def holder_record() -> dict:
    """Who takes the lock: this process."""
    command = shlex.join(sys.argv).replace("\n", " ")
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300], "since": time.time()}


def describe(holder: dict) -> str:
    """The holder of a lock in words."""
    if not holder:
        return "another process (it has not written its name yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} since {since} ({holder.get('command')})"


def _read_holder(fd: int) -> dict:
    """The holder record in the lock file; {} while it is empty or half written."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        value = json.loads(os.read(fd, 4096).decode("utf-8", "replace"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _alive(holder: dict) -> bool:
    """Whether the recorded holder may still run: a pid alive on this host, or any holder on another host."""
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    if host != socket.gethostname():
        return True  # its pid cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _take(fd: int, run_dir: Path) -> None:
    """flock the lock file, or refuse naming the holder."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except OSError as error:
        busy = error.errno in _BUSY
    holder = _read_holder(fd)
    if not busy and not _alive(holder):  # no flock on this file system: only a live recorded holder keeps it
        return
    gone = " (gone; a process it started still holds the lock)" if busy and holder and not _alive(holder) else ""
    raise RunLockedError(
        f"{run_dir} is being trained into by {describe(holder)}{gone}; two trainings there would interleave"
        " their checkpoints: wait for it, stop it, or choose another --run-dir"
    )


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)


_HELD: set[Path] = set()  # the lock files this process holds, so that a nested hold of one is a no-op


@contextmanager
def hold(run_dir: Path) -> Iterator[Path]:
    """Hold the run folder's lock for the block; raises RunLockedError while another process holds it.

    Re-entrant within a process: `fmnist-dsl train` holds its folders for the whole command, and the training
    loops it runs, which hold their own folder, then find it held already.
    """
    path = (Path(run_dir) / LOCK_NAME).resolve()
    if path in _HELD:
        yield path
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunDirError(f"{path}: cannot open the run folder's lock: {error.strerror or error}") from error
    try:
        _take(fd, Path(run_dir))
        _write(fd, json.dumps(holder_record()) + "\n")
        _HELD.add(path)
        try:
            yield path
        finally:
            _HELD.discard(path)
            _write(fd, "")  # the file stays: unlinking it would let a waiting process lock a file nobody else sees
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def hold_all(run_dirs: list[Path]) -> Iterator[None]:
    """Hold every folder's lock for the block, or none: the first one held elsewhere is refused, naming its holder."""
    with ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(hold(run_dir))
        yield
