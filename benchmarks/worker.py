"""One measurement in its own process, so its peak memory is its own and the frameworks never share a process.

`python -m benchmarks.worker LOOP FRAMEWORK MODEL --epochs E [--round R] [--train-limit N] --json OUT`
FRAMEWORK: torch, or keras on one of its backends: keras (TensorFlow), keras-jax, keras-torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from benchmarks.baselines import split_indices
from dsl.targets import PRECISIONS
from runtime.common.recipe import Recipe
from runtime.common.rundir import peak_rss_mb, read_json, write_json
from runtime.keras import backends

# The generated loop's flags per variant: generated-xla is Keras's opt-in XLA step (--jit-compile on),
# generated-P the generated loop in precision P (--precision P: tf32, bf16, fp16); the others compute in float32.
PRECISION_LOOPS = {f"generated-{precision}": precision for precision in PRECISIONS if precision != "float32"}
GENERATED_FLAGS = {"generated": [], "generated-xla": ["--jit-compile", "on"]}
GENERATED_FLAGS |= {loop: ["--precision", precision] for loop, precision in PRECISION_LOOPS.items()}
LOOPS = ("baseline", *GENERATED_FLAGS)
# The Keras loop on each of its backends, a framework of its own here; "keras" is the TensorFlow backend.
KERAS_BACKENDS = {"keras": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}
FRAMEWORKS = ("torch", *KERAS_BACKENDS)


def loops_of(framework: str, bf16: bool = False) -> tuple[str, ...]:
    """The loops benchmarked for a framework: XLA is an option of Keras on TensorFlow (jax always compiles, torch
    would go through torch.compile); bf16 when asked."""
    loops = ("baseline", "generated", "generated-xla") if framework == "keras" else ("baseline", "generated")
    return (*loops, "generated-bf16") if bf16 else loops


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The worker's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("framework", choices=FRAMEWORKS)
    parser.add_argument("model", help="a package under generated/, e.g. mlp")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--round", type=int, default=0, help="trains with the spec's seed + ROUND")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--torchvision-root", type=Path, default=None)
    parser.add_argument("--json", type=Path, required=True, help="where to write the result")
    return parser.parse_args(argv)


def generated_loop(script: ModuleType, args: argparse.Namespace, recipe: Recipe) -> dict:
    """Run the generated training script's main() in a temporary run folder and read back what it recorded."""
    framework, train_limit = script_framework(args.framework), args.train_limit
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as folder:
        argv = ["--run-dir", folder, "--epochs", str(recipe.epochs), "--seed", str(recipe.seed)]
        argv += ["--train-limit", str(train_limit)] if train_limit else []
        argv += GENERATED_FLAGS[args.loop]
        script.main(argv)
        run_dir = Path(folder) / framework
        history = read_json(run_dir / "history.json")
        metrics = read_json(run_dir / "metrics.json")
        precision_ran = read_json(run_dir / "run.json")["precision_ran"]
    return {
        "epoch_seconds": [row["seconds"] for row in history],
        "train_samples": len(split_indices(recipe, train_limit)[0]),
        "test_accuracy": metrics["test_accuracy"],
        "precision_ran": precision_ran,  # float32 where tf32 met a device without TF32
    }


def script_framework(framework: str) -> str:
    """The generated script's framework, "torch" or "keras", of a benchmark framework."""
    return "keras" if framework in KERAS_BACKENDS else framework


def _torch_device() -> dict:
    """The device PyTorch trains on, and the GPU's name when there is one."""
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(0)}
    return {"device": "cpu", "gpu": None}


def measure(args: argparse.Namespace) -> dict:
    """Train one (loop, framework, model) and return its figures."""
    if args.framework == "torch":
        import torchvision  # noqa: F401  (loads triton before anything could load TensorFlow)

        from runtime.common.frameworks import guard_triton

        guard_triton()
    else:
        backends.select(KERAS_BACKENDS[args.framework])  # before anything imports keras
    package = importlib.import_module(f"generated.{args.model}")
    script = importlib.import_module(f"generated.{args.model}.train_{script_framework(args.framework)}")
    # A schedule spans the benchmark's epochs; each round draws its own initial weights, split and batch order.
    spec_recipe = Recipe.from_dict(package.RECIPE)
    recipe = replace(spec_recipe, epochs=args.epochs, seed=spec_recipe.seed + args.round)
    if args.loop in GENERATED_FLAGS:
        result = generated_loop(script, args, recipe)
    elif args.framework == "torch":
        from benchmarks.baselines import torch_baseline

        result = torch_baseline(package, recipe, args.train_limit, args.torchvision_root)
    else:
        from benchmarks.baselines import keras_baseline

        result = keras_baseline(package, recipe, args.train_limit)
    device = _torch_device() if args.framework == "torch" else {"device": backends.first_device(), "gpu": None}
    meta = {"loop": args.loop, "framework": args.framework, "model": args.model, "batch_size": recipe.batch_size}
    backend = backends.current() if args.framework in KERAS_BACKENDS else None  # the one Keras ran on
    meta |= {"backend": backend, "precision": PRECISION_LOOPS.get(args.loop, "float32")}
    meta |= {"seed": recipe.seed}
    return meta | result | device | {"peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON result."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    write_json(args.json, measure(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
