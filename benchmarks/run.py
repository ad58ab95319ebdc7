"""`python -m benchmarks.run`: train each example model with the generated and the baseline loop, side by side.

Every (model, framework, loop) runs in its own process (benchmarks.worker), one after the other; with --rounds R the
loops alternate R times, so a slow spell of a shared machine falls on all of them, and round r trains every loop with
the spec's seed + r. Keras on TensorFlow runs a third loop, the generated one with XLA (--jit-compile on); Keras on
jax and torch are frameworks of their own (keras-jax, keras-torch); --bf16 adds the generated loops in bfloat16
(--precision bf16) and their ratios to float32. Then the runner times
`fmnist-dsl build` of all example specs and writes results.md, results.json and results.png into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import report
from benchmarks.worker import FRAMEWORKS, loops_of

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mlp", "lenet5")
FRAMEWORK_MODULES = ("torch", "tensorflow", "keras")
MARKER = "frameworks imported: "


class BenchmarkError(RuntimeError):
    """A worker failed; the message holds the tail of its log."""


def _names(text: str, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated list, each name checked against allowed."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or set(names) - set(allowed):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated subset of {', '.join(allowed)}")
    return names


def keras_on_its_backend(frameworks: list[str]) -> list[str]:
    """ "keras" as Keras reads it: on KERAS_BACKEND's backend when that is set (keras-jax, keras-torch), else
    TensorFlow; `fmnist-dsl bench --keras-backend NAME` sets it."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    named = "keras" if backend == "tensorflow" else f"keras-{backend}"
    return list(dict.fromkeys(named if framework == "keras" else framework for framework in frameworks))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The runner's command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop (default 3; figures use epochs 2..E)")
    parser.add_argument("--train-limit", type=int, default=None, help="train on the first N images (default: all)")
    parser.add_argument("--models", type=lambda t: _names(t, MODELS), default=list(MODELS), help="mlp,lenet5")
    parser.add_argument(
        "--frameworks",
        type=lambda t: _names(t, FRAMEWORKS),
        default=["torch", "keras"],
        help=f"a subset of {','.join(FRAMEWORKS)} (default torch,keras; keras: on KERAS_BACKEND, else TensorFlow)",
    )
    parser.add_argument("--bf16", action="store_true", help="also the generated loops with --precision bf16")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the loops R times (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results folder")
    args = parser.parse_args(argv)
    args.frameworks = keras_on_its_backend(args.frameworks)
    if min(args.epochs, args.rounds) < 1 or (args.train_limit is not None and args.train_limit < 1):
        parser.error("--epochs, --rounds and --train-limit must be >= 1")
    return args


def run_worker(
    loop: str, framework: str, model: str, args: argparse.Namespace, torchvision_root: Path | None, round_: int = 0
) -> dict:
    """One measurement in a fresh process; its output goes to OUT/logs/MODEL-FRAMEWORK-LOOP[-rROUND].log."""
    name = f"{model}-{framework}-{loop}" + (f"-r{round_ + 1}" if args.rounds > 1 else "")
    log, result = args.out / "logs" / f"{name}.log", args.out / "logs" / f"{name}.json"
    command = [sys.executable, "-m", "benchmarks.worker", loop, framework, model, "--epochs", str(args.epochs)]
    command += ["--round", str(round_), "--json", str(result)]
    command += ["--train-limit", str(args.train_limit)] if args.train_limit else []
    command += ["--torchvision-root", str(torchvision_root)] if torchvision_root else []
    print(f"[bench] {name} ...", flush=True)
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("w", encoding="utf-8") as out:
        status = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if status.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise BenchmarkError(f"{name} failed (exit {status.returncode}); log {log}:\n{tail}")
    return json.loads(result.read_text(encoding="utf-8"))


def _cli() -> list[str]:
    """The `fmnist-dsl` console script beside this interpreter, or the module form."""
    script = Path(sys.executable).with_name("fmnist-dsl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "compilers.cli"]


def time_build() -> dict:
    """Wall seconds of `fmnist-dsl build specs/*.yaml --out TMP`, and which frameworks a build process imports."""
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-build-") as folder:
        start = time.perf_counter()
        subprocess.run([*_cli(), "build", *specs, "--out", folder], cwd=ROOT, capture_output=True, check=True)
        seconds = time.perf_counter() - start
        probe = (
            "import sys; from compilers.cli import main; main(sys.argv[1:]); "
            f"print('{MARKER}' + ','.join(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules), file=sys.stderr)"
        )
        command = [sys.executable, "-c", probe, "build", *specs, "--out", f"{folder}/probe"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = [line.removeprefix(MARKER) for line in done.stderr.splitlines() if line.startswith(MARKER)]
    imported = [name for name in found[-1].split(",") if name] if found else ["unknown"]
    return {"specs": len(specs), "seconds": seconds, "frameworks_imported": imported}


def settings_line(args: argparse.Namespace) -> str:
    """The run's settings in words."""
    limit = f"first {args.train_limit} training images" if args.train_limit else "all training images"
    rounds = f", {args.rounds} alternating rounds per loop (round r: the spec's seed + r)" if args.rounds > 1 else ""
    threads = f", OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else ""
    return (
        f"{args.epochs} epochs{rounds}, {limit} (validation split per spec), each spec's batch size and optimizer"
        f"{threads}"
    )


def _loops(model: str, framework: str, args: argparse.Namespace, root: Path | None) -> list[dict]:
    """One row per loop of one (model, framework), the loops alternating for --rounds rounds."""
    rounds = {loop: [] for loop in loops_of(framework, args.bf16)}
    for round_ in range(args.rounds):
        for loop, results in rounds.items():
            results.append(run_worker(loop, framework, model, args, root, round_))
    return [report.summarize(results) for results in rounds.values()]


def run(args: argparse.Namespace) -> list[dict]:
    """Every measurement, then the build timing; writes the report files and returns the summarized rows."""
    from benchmarks.baselines import torchvision_root

    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    root = torchvision_root() if "torch" in args.frameworks else None
    rows = []
    for model in args.models:
        for framework in args.frameworks:
            rows += _loops(model, framework, args, root)
    build = time_build()
    text = report.markdown(rows, build, report.machine(rows), settings_line(args))
    (args.out / "results.md").write_text(text, encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "build": build}, indent=2) + "\n")
    report.chart(rows, args.out / "results.png")
    print(text)
    print(f"wrote {args.out / 'results.md'}, results.json and results.png")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point; a failed worker or missing data is one message and exit status 1."""
    from runtime.common.data import DataError

    args = parse_args(argv)
    try:
        run(args)
    except (BenchmarkError, DataError, subprocess.CalledProcessError) as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
