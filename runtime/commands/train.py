"""`fmnist-dsl train`, `evaluate` and `compare`: run the generated training loops and report on their runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from runtime.common.constants import FRAMEWORKS
from runtime.common.rundir import read_json

EXIT_TRAINING_FAILED = 3
SCRIPT_FLAGS = ("epochs", "batch_size", "seed", "data_dir", "train_limit", "jit_compile")


def script_argv(args, run_dir: Path) -> list[str]:
    """The generated scripts' flags for the options given on this command line."""
    argv = ["--run-dir", str(run_dir)]
    for flag in SCRIPT_FLAGS:
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return argv + (["--resume"] if args.resume else [])


def run_train(args, build) -> int:
    """Train in each chosen framework, PyTorch first (its modules load triton before TensorFlow can)."""
    from runtime.common.data import DataError
    from runtime.common.rules import NonFiniteLossError
    from runtime.common.rundir import prepare_run_dir

    package = build(args.spec)
    run_dir = args.run_dir or Path("runs") / package.NAME
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    for framework in frameworks:  # an unwritable folder fails here, before any training
        prepare_run_dir(run_dir / framework)
    for framework in frameworks:
        script = importlib.import_module(f"{package.__name__}.train_{framework}")
        try:
            script.main(script_argv(args, run_dir))
        except (NonFiniteLossError, DataError) as error:
            print(f"fmnist-dsl: {error}", file=sys.stderr)
            return EXIT_TRAINING_FAILED
    if not getattr(args, "quiet", False):
        print(summary(run_dir))
    return 0


def summary(run_dir: Path) -> str:
    """One screen: per framework, epochs, final validation and test figures, seconds per epoch."""
    lines = [
        f"run folder: {run_dir}",
        f"{'':8}{'epochs':>7}{'val acc':>9}{'test acc':>10}{'test loss':>11}{'s/epoch':>9}",
    ]
    for framework in FRAMEWORKS:
        history = read_json(run_dir / framework / "history.json", [])
        metrics = read_json(run_dir / framework / "metrics.json", {})
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
    from runtime.common.frameworks import guard_triton

    guard_triton()
    from runtime.interop import evaluation

    runs = [args.run_dir / framework for framework in FRAMEWORKS if (args.run_dir / framework / "run.json").exists()]
    if not runs:
        raise FileNotFoundError(f"{args.run_dir} holds no finished torch/ or keras/ run (run.json)")
    reproduced = True
    for run in runs:
        package = build(run / "spec.json")
        try:
            figures = evaluation.test_figures(package, run, args.data_dir, args.official_test)
        except DataError as error:
            print(f"fmnist-dsl: {error}", file=sys.stderr)
            return EXIT_TRAINING_FAILED
        test_set = "the official test set" if args.official_test else "its test split"
        print(
            f"{run.name}: reloaded model, test accuracy {figures['test_accuracy']:.4f} on {figures['test_samples']} "
            f"images of {test_set} (the run recorded {figures['recorded_test_accuracy']} on its test split)"
        )
        reproduced &= figures["reproduced"]
    print(summary(args.run_dir))
    return 0 if reproduced else 1


def compare_report(name: str, run_dir: Path) -> str:
    """compare.md: one row per framework, and the curves."""
    rows = []
    for framework in FRAMEWORKS:
        history, info = read_json(run_dir / framework / "history.json"), read_json(run_dir / framework / "run.json")
        metrics = read_json(run_dir / framework / "metrics.json")
        seconds = sum(r["seconds"] for r in history) / len(history)
        rows.append(
            f"| {framework} | {metrics['test_accuracy']:.4f} | {metrics['test_loss']:.4f} | {len(history)} | "
            f"{seconds:.2f} | {info.get('peak_rss_mb', float('nan')):.0f} |"
        )
    header = "| framework | test accuracy | test loss | epochs | seconds/epoch | peak RSS (MiB) |\n|---|---|---|---|---|---|"
    return "\n".join([f"# {name}: PyTorch vs Keras", "", header, *rows, "", "![curves](compare.png)", ""])


def run_compare(args, build) -> int:
    """Each framework in its own process, so each run's peak memory is its own."""
    from runtime.common import plots

    package = build(args.spec)
    run_dir = args.run_dir or Path("runs") / package.NAME
    for framework in FRAMEWORKS:
        command = [sys.executable, "-m", "compilers.cli", "train", str(args.spec), "--framework", framework, "--quiet"]
        status = subprocess.run(command + script_argv(args, run_dir), check=False).returncode
        if status:
            return status
    histories = {framework: read_json(run_dir / framework / "history.json") for framework in FRAMEWORKS}
    plots.plot_comparison(histories, run_dir / "compare.png")
    (run_dir / "compare.md").write_text(compare_report(package.NAME, run_dir), encoding="utf-8")
    print(summary(run_dir))
    print(f"wrote {run_dir / 'compare.md'} and {run_dir / 'compare.png'}")
    return 0
