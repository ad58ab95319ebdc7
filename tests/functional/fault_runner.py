"""Kill `fmnist-dsl train` at each step that publishes a file of its run folder, then resume it; WORK_DIR/report.json.

    python -m tests.functional.fault_runner FRAMEWORK WORK_DIR [TRAIN FLAGS...]

A publishing step is a rename, replace or rmdir inside the run folder (runtime.common.rundir.publish makes those).
A first run records them; then, for every step from the second epoch's commit to the final results' commit, a fresh
run is killed with SIGKILL just before that step and resumed with --resume. Each run is a child forked from this
process once the framework is imported, so a kill costs one training and not one start of Python and a framework.
The report lists, per step, the killed run's wait status, the resumed run's exit status, its history and whatever
the resume left behind of the publishing machinery.
"""

import json
import os
import signal
import sys
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "specs" / "mlp.yaml"
COUNTED = ("rename", "replace", "rmdir")


def _count_steps(run_root: Path, kill_at: int | None, log: list[tuple[str, str]]) -> None:
    """Wrap os's renames and rmdir: log those inside run_root, and SIGKILL this process before step kill_at."""
    for name in COUNTED:
        original = getattr(os, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            path = Path(os.fsdecode(args[0]))
            if path.is_relative_to(run_root):
                log.append((_name, str(path.relative_to(run_root))))
                if len(log) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return _original(*args, **kwargs)

        setattr(os, name, counted)


def run(argv: list[str], run_root: Path, kill_at: int | None = None, log_file: Path | None = None) -> int:
    """`fmnist-dsl ARGV` in a forked child; its exit status, or minus the signal that ended it."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            from compilers import cli

            log: list[tuple[str, str]] = []
            _count_steps(run_root.resolve(), kill_at, log)
            status = cli.main(argv)
            if log_file is not None:
                log_file.write_text(json.dumps(log))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def history(run_dir: Path) -> list[dict] | None:
    path = run_dir / "history.json"
    if not path.exists():
        return None
    return [{key: value for key, value in row.items() if key != "seconds"} for row in json.loads(path.read_text())]


def leftovers(run_dir: Path) -> list[str] | None:
    """What an interrupted publication leaves: .epoch-staging, .epoch-ready, .tmp-* files; None without a folder."""
    if not run_dir.is_dir():
        return None
    return sorted(path.name for path in run_dir.iterdir() if path.name.startswith((".epoch-", ".tmp-")))


def main() -> None:
    framework, work, flags = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if framework == "torch":
        from runtime.torch import training  # noqa: F401  (imported once, before the forks)
    else:
        import keras  # noqa: F401
    from runtime.common import data

    loaded = data.load_split_arrays()  # read once; each child starts with it in memory
    data.load_split_arrays = lambda *args, **kwargs: loaded

    def train(root: Path, *extra: str) -> list[str]:
        return ["train", str(SPEC), "--framework", framework, "--run-dir", str(root), "--quiet", *flags, *extra]

    baseline, log_file = work / "baseline", work / "steps.json"
    report = {"baseline_status": run(train(baseline), baseline, log_file=log_file)}
    steps = [tuple(step) for step in json.loads(log_file.read_text())]
    commits = [i for i, (op, path) in enumerate(steps, 1) if op == "rename" and path.endswith(".epoch-staging")]
    report |= {"steps": steps, "commits": commits, "baseline": history(baseline / framework), "kills": []}
    for kill_at in range(commits[1], commits[2] + 1):
        root = work / f"kill-{kill_at}"
        killed = run(train(root), root, kill_at=kill_at)
        killed_history = history(root / framework)
        resumed = run(train(root, "--resume"), root)
        report["kills"].append(
            {
                "step": kill_at,
                "at": steps[kill_at - 1],
                "killed_status": killed,
                "epochs_after_kill": None if killed_history is None else len(killed_history),
                "resumed_status": resumed,
                "history": history(root / framework),
                "leftovers": leftovers(root / framework),
            }
        )
    (work / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
