"""`fmnist-dsl train`, `evaluate` and `compare`: run the generated training loops and report on their runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

from compilers.project import build_and_import
from dsl import load_spec

FRAMEWORKS = ("torch", "keras")  # PyTorch first: triton must load before TensorFlow
EXIT_TRAINING_FAILED = 3


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a spec's model in PyTorch, Keras or both")
    train.add_argument("spec", type=Path, metavar="SPEC")
    train.add_argument("--framework", choices=(*FRAMEWORKS, "both"), default="both")
    _add_run_flags(train)
    train.set_defaults(run=run_train)
    evaluate = subparsers.add_parser("evaluate", help="reload a run's models and score them on its test split")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument(
        "--official-test", action="store_true", help="score on the official 10,000 test images, not the run's split"
    )
    evaluate.set_defaults(run=run_evaluate)
    compare = subparsers.add_parser("compare", help="train both frameworks and write a side-by-side report")
    compare.add_argument("spec", type=Path, metavar="SPEC")
    _add_run_flags(compare)
    compare.set_defaults(run=run_compare)


def _add_run_flags(parser) -> None:
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--run-dir", type=Path, help="output folder (default: runs/<spec name>)")
    parser.add_argument("--train-limit", type=int, help="train on the first N training images only")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--jit-compile", choices=("auto", "on", "off"), help="Keras: XLA-compile the train step (default auto)"
    )


def _script_argv(args, run_dir: Path) -> list[str]:
    """The generated scripts' flags for the options given on this command line."""
    argv = ["--run-dir", str(run_dir)]
    for flag in ("epochs", "batch_size", "seed", "data_dir", "train_limit", "jit_compile"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return argv + (["--resume"] if args.resume else [])


def run_train(args) -> int:
    from runtime.data import DataError
    from runtime.training import NonFiniteLossError, prepare_run_dir

    spec = load_spec(args.spec)
    run_dir = args.run_dir or Path("runs") / spec.name
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    for framework in frameworks:  # an unwritable folder fails here, before any training
        prepare_run_dir(run_dir / framework)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        package = build_and_import(args.spec, Path(folder))
        for framework in frameworks:  # PyTorch's runtime modules call runtime.frameworks.guard_triton()
            script = importlib.import_module(f"{package.__name__}.train_{framework}")
            try:
                results[framework] = script.main(_script_argv(args, run_dir))
            except (NonFiniteLossError, DataError) as error:
                print(f"fmnist-dsl: {error}", file=sys.stderr)
                return EXIT_TRAINING_FAILED
    print(summary(run_dir))
    return 0


def summary(run_dir: Path) -> str:
    """One screen: per framework, epochs, final validation and test figures, seconds per epoch."""
    from runtime.training import read_json

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


def run_evaluate(args) -> int:
    """Exit 1 when a reloaded model does not give back the test accuracy its run recorded."""
    from runtime.frameworks import guard_triton

    guard_triton()

    from runtime import evaluation
    from runtime.data import DataError

    runs = [args.run_dir / framework for framework in FRAMEWORKS if (args.run_dir / framework / "run.json").exists()]
    if not runs:
        raise FileNotFoundError(f"{args.run_dir} holds no finished torch/ or keras/ run (run.json)")
    reproduced = True
    for run in runs:
        with tempfile.TemporaryDirectory() as folder:
            package = build_and_import(run / "spec.json", Path(folder))
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


def run_compare(args) -> int:
    """Each framework in its own process, so each run's peak memory is its own."""
    from runtime import plots
    from runtime.training import read_json

    spec = load_spec(args.spec)
    run_dir = args.run_dir or Path("runs") / spec.name
    for framework in FRAMEWORKS:
        command = [sys.executable, "-m", "compilers.cli", "train", str(args.spec), "--framework", framework]
        status = subprocess.run(command + _script_argv(args, run_dir), check=False).returncode
        if status:
            return status
    runs = {
        name: (read_json(run_dir / name / "history.json"), read_json(run_dir / name / "run.json"))
        for name in FRAMEWORKS
    }
    metrics = {name: read_json(run_dir / name / "metrics.json") for name in FRAMEWORKS}
    plots.plot_comparison({name: history for name, (history, _) in runs.items()}, run_dir / "compare.png")
    rows = [
        f"| {name} | {metrics[name]['test_accuracy']:.4f} | {metrics[name]['test_loss']:.4f} | {len(history)} | "
        f"{sum(r['seconds'] for r in history) / len(history):.2f} | {info.get('peak_rss_mb', float('nan')):.0f} |"
        for name, (history, info) in runs.items()
    ]
    report = [
        f"# {spec.name}: PyTorch vs Keras",
        "",
        "| framework | test accuracy | test loss | epochs | seconds/epoch | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "![curves](compare.png)",
        "",
    ]
    (run_dir / "compare.md").write_text("\n".join(report), encoding="utf-8")
    print(summary(run_dir))
    print(f"wrote {run_dir / 'compare.md'} and {run_dir / 'compare.png'}")
    return 0
