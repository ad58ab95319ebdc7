"""Ctrl-C, SIGTERM or SIGHUP during training: the epoch's files stay one epoch's, and the run ends with one line
saying how to go on.

SIGTERM (what `timeout`, schedulers and container stops send) and SIGHUP (a closed terminal) are raised as `Stopped`,
a KeyboardInterrupt, so every path that handles Ctrl-C handles them: `held()` keeps all three from landing while an
epoch's files are published, and the command exits with 128 + the signal's number, as a shell reports a process that
signal ended (dsl/exits.py names them).
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dsl import exits
from runtime.common.recipe import Options
from runtime.common.replicas import ReplicasError
from runtime.common.rundir import read_json

EXIT_STATUS = {signal.SIGINT: exits.INTERRUPTED, signal.SIGTERM: exits.TERMINATED, signal.SIGHUP: exits.HUNG_UP}
STOPPING = (signal.SIGTERM, signal.SIGHUP)  # Ctrl-C's SIGINT Python raises as KeyboardInterrupt itself
# What to put back where a handler was not set from Python (signal.getsignal gives None).
DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(error: KeyboardInterrupt) -> int:
    """The exit status of a command a signal stopped: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return EXIT_STATUS[error.signum if isinstance(error, Stopped) else signal.SIGINT]


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def stopping_like_ctrl_c() -> Iterator[None]:
    """Raise SIGTERM and SIGHUP as Stopped while the block runs (not where they are ignored, as under nohup)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOPPING}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else DEFAULTS[signum])


@contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while the block runs, then raise the first at the block's end."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda got, frame: caught.append(got)) for signum in EXIT_STATUS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is signal.SIG_IGN and signum in STOPPING:
                caught = [got for got in caught if got != signum]
            signal.signal(signum, handler if handler is not None else DEFAULTS[signum])
    if caught:
        raise KeyboardInterrupt if caught[0] == signal.SIGINT else Stopped(caught[0])


def stopped_line(framework: str, run_dir: Path, resume_command: list[str], epochs: int | None = None) -> str:
    """Where training stopped (history.json's epochs + 1), what is saved, and the command that continues."""
    done = len(read_json(Path(run_dir) / "history.json", []) or [])
    if epochs is not None and done >= epochs:
        where = f"after {framework} epoch {done}, before its test figures"
    else:
        where = f"in {framework} epoch {done + 1}"
    saved = f"epochs 1-{done} are saved in {run_dir}" if done > 1 else f"epoch 1 is saved in {run_dir}"
    saved = saved if done else "no epoch had finished"
    return f"stopped {where} ({saved}); continue with: {shlex.join(resume_command)}"


def with_resume(argv: list[str]) -> list[str]:
    """argv with --resume, once."""
    return argv if "--resume" in argv else [*argv, "--resume"]


def run_script(main: Callable[..., object], parse_command_line: Callable[[list[str]], Options], framework: str) -> None:
    """A generated training script's entry point: its flags parsed once, then `main(options=...)`; Ctrl-C (SIGTERM,
    SIGHUP) ends it with stopped_line and exit status 130 (143, 129), and replicas the devices or a cluster cannot give
    (found once the framework has counted them) with one line and status 2."""
    options = parse_command_line(sys.argv[1:])
    try:
        with stopping_like_ctrl_c():
            main(options=options)
    except ReplicasError as error:
        print(f"{Path(sys.argv[0]).name}: {error}", file=sys.stderr)
        sys.exit(exits.BAD_INPUT)
    except KeyboardInterrupt as error:
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        command = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
        command += with_resume(sys.argv[1:])
        print(stopped_line(framework, options.run_dir / framework, command, options.recipe.epochs), file=sys.stderr)
        sys.exit(exit_status(error))
