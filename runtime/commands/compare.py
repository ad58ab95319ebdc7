"""`fmnist-dsl compare`'s report: two runs per seed, what their models agree on, their parity, and seed noise.

runtime/commands/train.py trains the runs; this module measures them (compare.json) and writes compare.md with
its PNG figures. Test images here are always the official 10,000, whatever test split a recipe carves.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np

from runtime.common.constants import FRAMEWORKS
from runtime.common.data import CLASS_NAMES
from runtime.common.rundir import plotting, read_history, read_metrics, read_run_record, write_json

PARITY_STEPS = 20  # a short float64 trajectory: enough to show the optimizers agree, seconds to run
LABELS = {"torch": "PyTorch", "keras": "Keras"}


def seeds_problem(args) -> str | None:
    """Why the seed flags cannot be used together, or None."""
    seeds = args.seeds or []
    if seeds and args.seed is not None:
        return "give --seed or --seeds, not both"
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    return f"--seeds: {repeated[0]} is given twice" if repeated else None


def seed_folders(run_dir: Path, seeds: list[int] | None) -> dict[int | None, Path]:
    """Seed -> the folder holding its torch/ and keras/ runs: RUN_DIR itself for one seed, else RUN_DIR/seed-S."""
    if not seeds or len(seeds) == 1:
        return {seeds[0] if seeds else None: run_dir}
    return {seed: run_dir / f"seed-{seed}" for seed in seeds}


def _run_row(run: Path, labels: np.ndarray, predicted: np.ndarray) -> dict:
    """One run's own figures (metrics.json, history, run.json) and its model's on the official test images."""
    from runtime.interop.comparison import per_class_accuracy

    history, info = read_history(run / "history.json"), read_run_record(run / "run.json")
    metrics = read_metrics(run / "metrics.json")
    return {
        "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"],
        "epochs": len(history),
        "seconds_per_epoch": sum(row["seconds"] for row in history) / len(history),
        "peak_rss_mb": info.get("peak_rss_mb"),
        "official_accuracy": float(np.mean(predicted == labels)),
        "per_class_accuracy": per_class_accuracy(labels, predicted).tolist(),
    }


def _seed_figures(package, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    from runtime.interop import comparison

    predicted = {
        framework: comparison.predicted_classes(package, folder / framework, images) for framework in FRAMEWORKS
    }
    agree = comparison.agreement(labels, predicted["torch"], predicted["keras"])
    return {
        "seed": read_run_record(folder / "torch" / "run.json")["seed"],
        "folder": str(folder),
        "runs": {framework: _run_row(folder / framework, labels, predicted[framework]) for framework in FRAMEWORKS},
        "agreement": agree.share,
        "disagreement_by_class": agree.by_class.tolist(),
        "disagreement_table": agree.table.tolist(),
    }


def _parity(package, data_dir: str | None) -> dict:
    from runtime.commands.parity import measure

    args = argparse.Namespace(no_real_data=False, data_dir=data_dir, steps=PARITY_STEPS, precision="float32")
    report = measure(args, package)
    keys = ("ok", "data", "forward_max_abs_diff", "train_forward_max_rel_diff", "gradient_max_rel_diff")
    keys += ("trajectory_steps", "loss_max_rel_diff", "final_weights_max_rel_diff")
    return {key: report[key] for key in keys} | {
        "worst_gradient": max(report["gradient_rel_diff"], key=report["gradient_rel_diff"].get, default="")
    }


def measure(package, folders: dict, data_dir: str | None) -> dict:
    """Every figure of the report, JSON-ready; the per-class figures are means over the seeds."""
    from runtime.common.data import load_split_arrays
    from runtime.common.frameworks import guard_triton
    from runtime.interop import comparison

    guard_triton()
    data = load_split_arrays(data_dir, download=False)
    seeds = [_seed_figures(package, folder, data.test_images, data.test_labels) for folder in folders.values()]
    accuracies = {fw: [seed["runs"][fw]["official_accuracy"] for seed in seeds] for fw in FRAMEWORKS}
    table = np.sum([seed["disagreement_table"] for seed in seeds], axis=0)
    noise = comparison.welch(accuracies["torch"], accuracies["keras"]) if len(seeds) > 1 else None
    return {
        "spec": package.NAME,
        "test_images": int(len(data.test_labels)),
        "seeds": seeds,
        "agreement": float(np.mean([seed["agreement"] for seed in seeds])),
        "per_class_accuracy": {
            fw: np.mean([seed["runs"][fw]["per_class_accuracy"] for seed in seeds], axis=0).tolist()
            for fw in FRAMEWORKS
        },
        "disagreement_by_class": np.mean([seed["disagreement_by_class"] for seed in seeds], axis=0).tolist(),
        "disagreement_pairs": comparison.commonest_pairs(table),
        "parity": _parity(package, data_dir),
        "seed_noise": noise and {"statistic": "Welch's t", "alpha": comparison.ALPHA, **asdict(noise)},
        "has_dropout": any(row.kind == "Dropout" for row in package.LAYERS),
    }


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _runs_section(figures: dict) -> list[str]:
    lines = [
        "## Runs",
        "Test accuracy and loss on each run's own test split (its recipe's), as metrics.json records them.",
        "",
        "| framework | test accuracy | test loss | epochs | seconds/epoch | peak RSS (MiB) | seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed in figures["seeds"]:
        for framework, run in seed["runs"].items():
            rss = float("nan") if run["peak_rss_mb"] is None else run["peak_rss_mb"]
            lines.append(
                f"| {framework} | {run['test_accuracy']:.4f} | {run['test_loss']:.4f} | {run['epochs']} | "
                f"{run['seconds_per_epoch']:.2f} | {rss:.0f} | {seed['seed']} |"
            )
    return [*lines, "", f"![curves](compare.png) (the learning curves of seed {figures['seeds'][0]['seed']})", ""]


def _agreement_section(figures: dict) -> list[str]:
    count, seeds = figures["test_images"], figures["seeds"]
    per_seed = ", ".join(f"seed {seed['seed']}: {_percent(seed['agreement'])}" for seed in seeds)
    means = "" if len(seeds) == 1 else " (means over the seeds)"
    lines = [
        f"## Agreement on the {count:,} official test images",
        f"The two trained models give the same class to **{_percent(figures['agreement'])}** of the test images"
        f" ({per_seed}). By true class{means}: each framework's accuracy, and the share of the class's images the"
        " two models classify differently.",
        "",
        "| class | PyTorch accuracy | Keras accuracy | difference | classified differently |",
        "|---|---|---|---|---|",
    ]
    torch_acc, keras_acc = figures["per_class_accuracy"]["torch"], figures["per_class_accuracy"]["keras"]
    for name, t, k, split in zip(CLASS_NAMES, torch_acc, keras_acc, figures["disagreement_by_class"]):
        lines.append(f"| {name} | {t:.4f} | {k:.4f} | {t - k:+.4f} | {_percent(split)} |")
    overall = [np.mean([seed["runs"][fw]["official_accuracy"] for seed in seeds]) for fw in FRAMEWORKS]
    lines.append(
        f"| all | {overall[0]:.4f} | {overall[1]:.4f} | {overall[0] - overall[1]:+.4f} |"
        f" {_percent(1 - figures['agreement'])} |"
    )
    pairs = "; ".join(f"{CLASS_NAMES[a]} / {CLASS_NAMES[b]}: {n}" for a, b, n in figures["disagreement_pairs"])
    total = "" if len(seeds) == 1 else ", over all seeds"
    lines += ["", f"The commonest disagreements (PyTorch's class / Keras's class: images{total}): {pairs or 'none'}."]
    return [*lines, "", "![per class](compare_classes.png)", ""]


def _parity_section(figures: dict) -> list[str]:
    from runtime.interop.parity import FORWARD_TOL, GRADIENT_TOL, LOSS_TOL, WEIGHT_TOL

    parity = figures["parity"]
    rows = (
        ("eval forward, max absolute difference (float32)", parity["forward_max_abs_diff"], FORWARD_TOL),
        ("train forward, dropout off, max relative (float32)", parity["train_forward_max_rel_diff"], GRADIENT_TOL),
        (
            f"gradients, max relative (float64; worst {parity['worst_gradient']})",
            parity["gradient_max_rel_diff"],
            GRADIENT_TOL,
        ),
        (
            f"{parity['trajectory_steps']}-step trajectory: losses, max relative (float64)",
            parity["loss_max_rel_diff"],
            LOSS_TOL,
        ),
        ("the trajectory's final weights, max relative (float64)", parity["final_weights_max_rel_diff"], WEIGHT_TOL),
    )
    lines = [
        "## Parity of the two models",
        f"PyTorch's initial weights copied into Keras, with the spec's optimizer; data: {parity['data']}.",
        "",
        "| figure | value | tolerance | |",
        "|---|---|---|---|",
        *(
            f"| {label} | {value:.2e} | {tol:.0e} | {'ok' if value <= tol else 'FAILED'} |"
            for label, value, tol in rows
        ),
        "",
    ]
    if not parity["ok"]:
        return [
            *lines,
            "The models do not compute alike: the gap may be a bug (`fmnist-dsl parity SPEC` shows where).",
            "",
        ]
    masks = (
        "the dropout masks, which each framework draws with its own generator, and " if figures["has_dropout"] else ""
    )
    return [
        *lines,
        "The two models compute the same outputs, gradients and optimizer steps, from the same initial weights and"
        f" batches; what still differs between the runs is {masks}float32 rounding, which compounds over the steps.",
        "",
    ]


def _noise_section(figures: dict) -> list[str]:
    noise, seeds = figures["seed_noise"], figures["seeds"]
    lines = ["## Seed-to-seed noise"]
    if noise is None:
        gap = seeds[0]["runs"]["torch"]["official_accuracy"] - seeds[0]["runs"]["keras"]["official_accuracy"]
        return [
            *lines,
            f"One seed: no spread to weigh the gap of {gap:+.4f} against (`--seeds 0 1 2 3 4` trains several).",
            "",
        ]
    lines += [
        "Official test accuracy per seed:",
        "",
        "| seed | PyTorch | Keras | gap | agreement |",
        "|---|---|---|---|---|",
    ]
    for seed in seeds:
        t, k = (seed["runs"][fw]["official_accuracy"] for fw in FRAMEWORKS)
        lines.append(f"| {seed['seed']} | {t:.4f} | {k:.4f} | {t - k:+.4f} | {_percent(seed['agreement'])} |")
    (mean_t, mean_k), (std_t, std_k) = noise["means"], noise["stds"]
    lines.append(f"| mean ± sd | {mean_t:.4f} ± {std_t:.4f} | {mean_k:.4f} ± {std_k:.4f} | {noise['gap']:+.4f} | |")
    verdict = "within" if noise["within_noise"] else "larger than"
    sign = "≥" if noise["within_noise"] else "<"
    return [
        *lines,
        "",
        f"Welch's t-test (unequal variances) on the {len(seeds)} per-seed accuracies of each framework: gap"
        f" {noise['gap']:+.4f}, t = {noise['t']:.2f} on {noise['df']:.1f} degrees of freedom, two-sided p ="
        f" {noise['p']:.3f}: the gap is **{verdict} the seed-to-seed noise** (p {sign} {noise['alpha']}). With few"
        " seeds the test has little power: a gap within the noise is no proof that there is none.",
        "",
    ]


def markdown(figures: dict) -> str:
    """compare.md."""
    seeds = [seed["seed"] for seed in figures["seeds"]]
    if len(seeds) == 1:
        opening = f"Seed {seeds[0]}: both frameworks start"
    else:
        folders = ", ".join(f"seed-{seed}/" for seed in seeds)
        opening = f"Seeds {', '.join(map(str, seeds))} (runs in {folders}): per seed, both frameworks start"
    head = [
        f"# {figures['spec']}: PyTorch vs Keras",
        "",
        f"{opening} from the same initial weights and see the same batches in the same order.",
        "",
    ]
    sections = (_runs_section, _agreement_section, _parity_section, _noise_section)
    return "\n".join(head + [line for section in sections for line in section(figures)])


def write_report(package, folders: dict, data_dir: str | None, run_dir: Path) -> list[Path]:
    """compare.json, compare.md and the two PNGs in run_dir; returns their paths."""
    figures = measure(package, folders, data_dir)
    write_json(run_dir / "compare.json", figures)
    with plotting("compare.png and compare_classes.png"):
        from runtime.common import plots

        first = next(iter(folders.values()))
        plots.plot_comparison(
            {fw: read_history(first / fw / "history.json") for fw in FRAMEWORKS}, run_dir / "compare.png"
        )
        accuracies = {LABELS[fw]: values for fw, values in figures["per_class_accuracy"].items()}
        plots.plot_class_comparison(accuracies, figures["disagreement_by_class"], run_dir / "compare_classes.png")
    (run_dir / "compare.md").write_text(markdown(figures), encoding="utf-8")
    return [run_dir / name for name in ("compare.md", "compare.json", "compare.png", "compare_classes.png")]
