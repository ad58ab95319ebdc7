"""Ctrl-C during training: the epoch's files stay one epoch's, and the run ends with one line saying how to go on.

Every epoch writes several files (weights, optimizer state, history); `held()` keeps Ctrl-C from landing between
them, so the last complete epoch's checkpoint and history always agree.
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


@contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C while the block runs, then raise it as KeyboardInterrupt at the block's end."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


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
    """A generated training script's entry point: its flags parsed once, then `main(options=...)`; Ctrl-C ends it with
    stopped_line and exit status 130, and replicas the devices or a cluster cannot give (found once the framework has
    counted them) with one line and status 2."""
    options = parse_command_line(sys.argv[1:])
    try:
        main(options=options)
    except ReplicasError as error:
        print(f"{Path(sys.argv[0]).name}: {error}", file=sys.stderr)
        sys.exit(exits.BAD_INPUT)
    except KeyboardInterrupt:
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        command = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
        command += with_resume(sys.argv[1:])
        print(stopped_line(framework, options.run_dir / framework, command, options.recipe.epochs), file=sys.stderr)
        sys.exit(exits.INTERRUPTED)
