"""`python -m benchmarks.gpu [--smoke]`: the GPU check, one table of what this machine's GPU and frameworks give.

Three parts, each in its own processes, on whatever GPU and frameworks are installed (Keras on jax alone will do):
- parity (`fmnist-dsl parity --json`) of every example spec on every installed Keras backend, in each of parity's
  precisions: float32 (IEEE float32 dots, the float32 targets) and tf32 (TF32 dots, TF32's targets);
- the benchmark's generated loops (benchmarks.worker) for the MLP and LeNet-5 in every precision (float32, tf32,
  bf16, fp16), PyTorch and Keras on its installed TensorFlow and jax backends; a precision the machine refuses is a
  row saying so;
- `best` trained to the end in each of those frameworks (`fmnist-dsl train`), with its training time to 94%
  validation accuracy and its test accuracy.
`--smoke` makes it small enough for a CPU (one spec, 2 trajectory steps, 512 images, one epoch): it proves the
command, not the figures. docs/performance.md holds the output of a full run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import report
from benchmarks.run import BenchmarkError, run_worker
from benchmarks.worker import KERAS_BACKENDS, PRECISION_LOOPS
from dsl.targets import PARITY_PRECISIONS, PRECISIONS
from runtime.keras.backends import NAMES, BackendError, check

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "compilers.cli"]
BEST_TARGET = 0.94  # validation accuracy `best` is timed to
LOOP_OF = {"float32": "generated"} | {precision: loop for loop, precision in PRECISION_LOOPS.items()}
HEADER = ("| check | model | framework | precision (ran) | figures | verdict |", "|---|---|---|---|---|---|")


def installed_backends(asked: list[str] | None) -> list[str]:
    """The Keras backends asked for (default: all) whose package is installed, in Keras's order."""
    found = []
    for name in asked or NAMES:
        try:
            found.append(check(name))
        except BackendError:
            pass
    return found


def _env(**extra: str) -> dict:
    return os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"} | extra


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def parity_rows(specs: list[Path], backends: list[str], args: argparse.Namespace) -> list[str]:
    """One row per (spec, backend, precision): the float32 figures, the float64 ones, and the verdict."""
    rows = []
    for spec in specs:
        for backend in backends:
            for precision in PARITY_PRECISIONS:
                command = [*CLI, "parity", str(spec), "--json", "--keras-backend", backend, "--precision", precision]
                command += ["--steps", str(args.steps)] + (["--no-real-data"] if args.smoke else [])
                done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=_env(), check=False)
                if done.returncode not in (0, 1):
                    rows.append(
                        _row("parity", spec.stem, f"keras/{backend}", precision, _last_line(done.stderr), "FAIL")
                    )
                    continue
                found = json.loads(done.stdout)
                ran, verdict = f"{precision} ({found['precision_ran']})", "ok" if found["ok"] else "FAIL"
                rows.append(_row("parity", spec.stem, f"keras/{backend}", ran, _parity_figures(found), verdict))
    return rows


def _parity_figures(found: dict) -> str:
    """A parity report's figures: the float32 ones (eval and train forward), then the float64 ones."""
    forward, train = found["forward_max_abs_diff"], found["train_forward_max_rel_diff"]
    trajectory = f"{found['loss_max_rel_diff']:.1e} / {found['final_weights_max_rel_diff']:.1e}"
    return f"forward {forward:.1e}, train forward {train:.1e}, gradients {found['gradient_max_rel_diff']:.1e}, " + (
        f"trajectory {trajectory}"
    )


def bench_rows(frameworks: list[str], args: argparse.Namespace, out: Path) -> list[str]:
    """One row per (model, framework, precision): the generated loop's seconds per epoch and test accuracy."""
    worker_args = argparse.Namespace(epochs=args.epochs, train_limit=args.train_limit, rounds=1, out=out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    rows = []
    for model in args.models:
        for framework in frameworks:
            for precision in PRECISIONS:
                try:
                    result = report.summarize([run_worker(LOOP_OF[precision], framework, model, worker_args, None)])
                except BenchmarkError as error:
                    refusal = next((line for line in str(error).splitlines() if "precision" in line), str(error))
                    rows.append(_row("bench", model, framework, precision, refusal.strip()[-160:], "not run"))
                    continue
                figures = (
                    f"{result['median_s']:.3f} s/epoch median ({result['samples_per_s']:,.0f} samples/s), "
                    f"test acc {result['test_accuracy']:.4f}, {result['device']}"
                )
                ran = f"{precision} ({result.get('precision_ran', '?')})"
                rows.append(_row("bench", model, framework, ran, figures, "-"))
    return rows


def best_rows(frameworks: list[str], args: argparse.Namespace, out: Path) -> list[str]:
    """`best` trained to the end per framework: time to BEST_TARGET validation accuracy, test accuracy."""
    rows = []
    for framework in frameworks:
        run_dir = out / f"best-{framework}"
        command = [*CLI, "train", "specs/best.yaml", "--run-dir", str(run_dir), "--quiet"]
        command += ["--framework", "torch"] if framework == "torch" else ["--framework", "keras"]
        env = _env() if framework == "torch" else _env(KERAS_BACKEND=KERAS_BACKENDS[framework])
        command += ["--epochs", str(args.epochs), "--train-limit", str(args.train_limit)] if args.smoke else []
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
        folder = run_dir / ("torch" if framework == "torch" else "keras")
        if done.returncode:
            rows.append(_row("best", "best", framework, "float32", _last_line(done.stderr), "FAIL"))
            continue
        history = json.loads((folder / "history.json").read_text())
        test = json.loads((folder / "metrics.json").read_text())["test_accuracy"]
        rows.append(_row("best", "best", framework, "float32", *_time_to_target(history, test)))
    return rows


def _time_to_target(history: list[dict], test_accuracy: float) -> tuple[str, str]:
    """The figures and verdict of one `best` run from its history."""
    seconds = 0.0
    reached = None
    for record in history:
        seconds += record["seconds"]
        if reached is None and (record["val_accuracy"] or 0.0) >= BEST_TARGET:
            reached = (record["epoch"], seconds)
    total = sum(record["seconds"] for record in history)
    figures = f"{len(history)} epoch(s) in {total:.1f} s, test acc {test_accuracy:.4f}, "
    if reached is None:
        return figures + f"{BEST_TARGET:.0%} validation accuracy not reached", "not reached"
    return figures + f"{BEST_TARGET:.0%} validation accuracy at epoch {reached[0]} after {reached[1]:.1f} s", "reached"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to prove the command on a CPU")
    parser.add_argument("--keras-backends", type=lambda text: text.split(","), default=None, help="default: all")
    parser.add_argument("--steps", type=int, default=None, help="parity's trajectory steps (default 100; smoke 2)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run folders and logs here")
    args = parser.parse_args(argv)
    args.steps = args.steps or (2 if args.smoke else 100)
    args.epochs, args.train_limit = (1, 512) if args.smoke else (3, None)
    args.models = ["mlp"] if args.smoke else ["mlp", "lenet5"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = installed_backends(args.keras_backends)
    torch_installed = importlib.util.find_spec("torch") is not None
    specs = [ROOT / "specs" / "mlp.yaml"] if args.smoke else sorted((ROOT / "specs").glob("*.yaml"))
    keras_frameworks = [name for name, backend in KERAS_BACKENDS.items() if backend in backends and backend != "torch"]
    frameworks = (["torch"] if torch_installed else []) + keras_frameworks
    print(f"Keras backends: {', '.join(backends) or 'none'}; PyTorch {'installed' if torch_installed else 'missing'}")
    with tempfile.TemporaryDirectory(prefix="fmnist-gpu-") as scratch:
        out = args.out or Path(scratch)
        rows = parity_rows(specs, backends, args) if torch_installed else []
        rows += bench_rows(frameworks, args, out) + best_rows(frameworks, args, out)
    print("\n".join([*HEADER, *rows]))
    return 0 if not any(row.endswith("| FAIL |") for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
