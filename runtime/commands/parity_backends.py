"""`fmnist-dsl parity SPEC --keras-backend all`: the parity report on every Keras backend, as one table.

A process has one Keras backend, chosen when keras is first imported, so each backend runs in its own
`fmnist-dsl parity --json` subprocess and this one only gathers the reports.
"""

import json
import os
import subprocess
import sys

from dsl import exits
from runtime.keras.backends import NAMES

# (label, the report's figure, the target it is judged by)
ROWS = (
    ("eval forward, PyTorch weights in Keras (f32, abs)", "forward_max_abs_diff", "forward"),
    ("eval forward, Keras weights in PyTorch (f32, abs)", "forward_to_torch_max_abs_diff", "forward"),
    ("train forward, dropout off (f32, rel)", "train_forward_max_rel_diff", "train_forward"),
    ("gradients (float64 model, rel)", "gradient_max_rel_diff", "gradient"),
    ("trajectory losses (float64 model, rel)", "loss_max_rel_diff", "loss"),
    ("trajectory final weights (float64 model, rel)", "final_weights_max_rel_diff", "weights"),
)


def _argv(args, backend: str) -> list[str]:
    argv = [sys.executable, "-m", "compilers.cli", "parity", str(args.spec), "--json", "--steps", str(args.steps)]
    argv += ["--precision", args.precision]
    argv += ["--keras-backend", backend] + (["--no-real-data"] if args.no_real_data else [])
    return argv + (["--data-dir", str(args.data_dir)] if args.data_dir else [])


def measure_all(args) -> dict[str, dict]:
    """Backend -> its parity report; a subprocess that fails without a report ends this one with its status."""
    reports = {}
    for backend in NAMES:
        result = subprocess.run(_argv(args, backend), capture_output=True, text=True, env=dict(os.environ))
        if result.returncode not in (0, exits.CHECK_FAILED):
            sys.stderr.write(result.stderr)
            raise SystemExit(result.returncode)
        reports[backend] = json.loads(result.stdout)
    return reports


def _cell(report: dict, figure: str, target: str) -> str:
    value, bound = report[figure], report["targets"][target]
    return f"{value:.1e} {'ok' if value <= bound else 'FAIL'} (<={bound:.0e})"


def table(reports: dict[str, dict]) -> str:
    """One row per figure, one column per backend; each cell the figure, its verdict and its target."""
    first = next(iter(reports.values()))
    dots = ", ".join(f"{backend} {report['precision_ran']}" for backend, report in reports.items())
    lines = [f"parity of {first['spec']!r} on every Keras backend (data: {first['data']}; float32 dots: {dots})"]
    lines.append(f"{'':50}" + "".join(f"{name:>24}" for name in reports))
    for label, figure, target in ROWS:
        lines.append(f"{label:50}" + "".join(f"{_cell(r, figure, target):>24}" for r in reports.values()))
    lines.append(f"{'':50}" + "".join(f"{'OK' if r['ok'] else 'FAILED':>24}" for r in reports.values()))
    return "\n".join(lines)


def run(args) -> int:
    """Exit 1 when any backend misses a target."""
    reports = measure_all(args)
    ok = all(report["ok"] for report in reports.values())
    print(json.dumps({"ok": ok, "backends": reports}) if args.json else table(reports))
    return 0 if ok else exits.CHECK_FAILED
