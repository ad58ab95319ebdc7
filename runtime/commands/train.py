"""`fmnist-dsl train`, `evaluate` and `compare`: run the generated training loops and report on their runs."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

from dsl import exits, run_flags
from runtime.common import interrupt, runlock
from runtime.common.constants import FRAMEWORKS
from runtime.common.frameworks import require
from runtime.common.rundir import read_history, read_metrics


def run_train(args, build) -> int:
    """Train in each chosen framework, PyTorch first (its modules load triton before TensorFlow can)."""
    from runtime.common.recipe import OptionError
    from runtime.common.rundir import prepare_run_dir

    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    package = build(args.spec)
    try:
        run_options(args, package, frameworks, loaded=False)  # refused before the frameworks load (seconds)
        require(*frameworks, purpose=f"train --framework {args.framework}")
        options = run_options(args, package, frameworks, loaded=True)  # before a run folder is made
    except OptionError as error:
        print(f"fmnist-dsl: {error}", file=sys.stderr)
        return exits.BAD_INPUT
    run_dir = options[frameworks[0]].run_dir
    folders = [run_dir, *(run_dir / framework for framework in frameworks)]
    created = [folder for folder in [*reversed(run_dir.parents), *folders] if not folder.exists()]
    status = exits.BAD_INPUT
    try:
        for folder in folders:  # an unwritable folder fails here, before any training
            prepare_run_dir(folder)
        # One lock for the whole command: the run folder's and each framework's, which the training loops (and the
        # generated scripts, run on their own) take; no other command trains into any of them until this one ends.
        with runlock.hold_all(folders), interrupt.stopping_like_ctrl_c():
            status = _train_each(args, package, options)
    finally:
        if status == exits.BAD_INPUT:  # bad input writes nothing: not even the folders this command made
            _remove_if_empty(created)
    if status == 0 and not getattr(args, "quiet", False):
        print(summary(run_dir))
    return status


def _train_each(args, package, options: dict) -> int:
    """Run each framework's generated script in turn (`options`: framework -> its run); the command's exit status."""
    from runtime.common.data import DataError
    from runtime.common.replicas import ReplicasError
    from runtime.common.rules import NonFiniteLossError

    for framework, run in options.items():
        script = importlib.import_module(f"{package.__name__}.train_{framework}")
        try:
            script.main(options=run)
        except (ReplicasError, DataError) as error:  # a device count the framework reports (GPUs); unreadable data
            print(f"fmnist-dsl: {error}", file=sys.stderr)
            return exits.BAD_INPUT
        except NonFiniteLossError as error:
            print(f"fmnist-dsl: {error}", file=sys.stderr)
            return exits.TRAINING_FAILED
        except KeyboardInterrupt as error:  # Ctrl-C, SIGTERM, SIGHUP
            line = interrupt.stopped_line(framework, run.run_dir / framework, resume_command(args), run.recipe.epochs)
            print(f"fmnist-dsl: {line}", file=sys.stderr)
            return interrupt.exit_status(error)
    return 0


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a refused command made, deepest first, where they hold nothing but their lock file."""
    for folder in reversed(folders):
        if folder.is_dir() and all(path.name == runlock.LOCK_NAME for path in folder.iterdir()):
            (folder / runlock.LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()


def run_options(args, package, frameworks, loaded: bool) -> dict:
    """Framework -> the run its loop is asked for; raises OptionError. `loaded`: the frameworks are imported, so each
    can say which precisions it runs here; before, only what the flags alone rule out is checked."""
    from runtime.common.precision import PRECISIONS
    from runtime.common.recipe import OptionError, Recipe, options

    recipe = Recipe.from_dict(package.RECIPE)
    chosen = {}
    for framework in frameworks:
        runnable = importlib.import_module(f"runtime.{framework}.precision").runnable() if loaded else (PRECISIONS, "")
        flags = args if len(frameworks) == 1 else argparse.Namespace(**vars(args) | for_one(framework))
        chosen[framework] = options(flags, recipe, Path("runs") / package.NAME, framework, runnable)
    replicas = chosen[frameworks[-1]].replicas
    if replicas > 1 and "keras" in frameworks and os.environ.get("KERAS_BACKEND") == "torch":
        problem = f"--replicas {replicas}: Keras on the torch backend trains on one device; use --framework torch"
        raise OptionError(problem)
    return chosen


def for_one(framework: str) -> dict:
    """What a command that trains both frameworks leaves out of one's flags: the other's own (Keras's --jit-compile)."""
    return {} if framework == "keras" else dict.fromkeys(run_flags.KERAS_ONLY)


def resume_command(args) -> list[str]:
    """The `fmnist-dsl train` command line that continues this one from its last checkpoint."""
    command = ["fmnist-dsl", "train", str(args.spec), "--framework", args.framework]
    command += ["--quiet"] if getattr(args, "quiet", False) else []
    return command + run_flags.to_argv(args, resume=True)


def summary(run_dir: Path) -> str:
    """One screen: per framework, epochs, final validation and test figures, seconds per epoch."""
    lines = [
        f"run folder: {run_dir}",
        f"{'':8}{'epochs':>7}{'val acc':>9}{'test acc':>10}{'test loss':>11}{'s/epoch':>9}",
    ]
    for framework in FRAMEWORKS:
        history = read_history(run_dir / framework / "history.json")
        metrics = read_metrics(run_dir / framework / "metrics.json")
        if not history:
            continue
        val = history[-1]["val_accuracy"]
        seconds = sum(row["seconds"] for row in history) / len(history)
        lines.append(
            f"{framework:8}{len(history):>7}{'-' if val is None else f'{val:.4f}':>9}"
            f"{metrics.get('test_accuracy', float('nan')):>10.4f}{metrics.get('test_loss', float('nan')):>11.4f}"
            f"{seconds:>9.2f}"
        )
    return "\n".join(lines)


def run_evaluate(args, build) -> int:
    """Exit 1 when a reloaded model does not give back the test accuracy its run recorded."""
    from runtime.common.data import DataError

    runs = [args.run_dir / framework for framework in FRAMEWORKS if (args.run_dir / framework / "run.json").exists()]
    if not runs:
        raise FileNotFoundError(f"{args.run_dir} holds no finished torch/ or keras/ run (run.json)")
    require(*(run.name for run in runs), purpose=f"evaluate {args.run_dir}")
    from runtime.interop import evaluation

    reproduced = True
    for run in runs:
        package = build(run / "spec.json")
        try:
            figures = evaluation.test_figures(package, run, args.data_dir, args.official_test)
        except DataError as error:
            print(f"fmnist-dsl: {error}", file=sys.stderr)
            return exits.BAD_INPUT
        test_set = "the official test set" if args.official_test else "its test split"
        print(
            f"{run.name}: reloaded model, test accuracy {figures['test_accuracy']:.4f} on {figures['test_samples']} "
            f"images of {test_set} (the run recorded {figures['recorded_test_accuracy']} on its test split)"
        )
        reproduced &= figures["reproduced"]
    print(summary(args.run_dir))
    return 0 if reproduced else exits.CHECK_FAILED


def _child(command: list[str]) -> int:
    """Run a training process to its end; on Ctrl-C (which it gets too) wait while it saves and says how to go on,
    and pass SIGTERM or SIGHUP (sent to this process only) on to it first."""
    process = subprocess.Popen(command)
    try:
        with interrupt.stopping_like_ctrl_c():
            return process.wait()
    except KeyboardInterrupt as error:
        if isinstance(error, interrupt.Stopped):
            process.send_signal(error.signum)
        return process.wait()


def run_compare(args, build) -> int:
    """Each framework in its own process, so each run's peak memory is its own; then compare.md and its figures."""
    from runtime.commands import compare

    problem = compare.seeds_problem(args)
    if problem:
        print(f"fmnist-dsl: compare: {problem}", file=sys.stderr)
        return exits.BAD_INPUT
    require(*FRAMEWORKS, purpose="compare")
    package = build(args.spec)
    run_dir = args.run_dir or Path("runs") / package.NAME
    folders = compare.seed_folders(run_dir, args.seeds)
    cli = [sys.executable, "-m", "compilers.cli", *(["--verbose"] if getattr(args, "verbose", False) else [])]
    cli += [f"--max-spec-bytes={args.max_spec_bytes}"] if hasattr(args, "max_spec_bytes") else []
    for seed, folder in folders.items():
        chosen = {"run_dir": folder} | ({} if seed is None else {"seed": seed})
        for framework in FRAMEWORKS:
            flags = run_flags.to_argv(args, **chosen, **for_one(framework))
            train = ["train", str(args.spec), "--framework", framework, "--quiet", *flags]
            status = _child(cli + train)
            if status:
                return status
    written = compare.write_report(package, folders, args.data_dir, run_dir)
    for folder in folders.values():
        print(summary(folder))
    print("wrote " + ", ".join(str(path) for path in written if path.exists()))
    return 0
