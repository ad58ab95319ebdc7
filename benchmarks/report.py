"""Figures from the workers' results: per-epoch statistics, ratios, the Markdown table, the bar chart, the machine."""

from __future__ import annotations

import math
import os
import platform
import statistics
from pathlib import Path

GPU_TARGET_SECONDS = 0.6
GPU_TARGET = f"GPU target (the MLP's generated PyTorch loop at batch 32 in <= {GPU_TARGET_SECONDS} s/epoch on an H100)"
COLOURS = ("#b0b0b0", "#2a7ab9", "#e08a2c", "#5aa05a")  # baseline, generated, generated-xla, generated-bf16
# x86 CPU flag and its name, widest first (ARM lists "Features", not "flags": no entry there)
VECTOR_EXTENSIONS = (("avx512f", "AVX-512"), ("avx2", "AVX2"))
HEADER = (
    "| model | framework | loop | batch | train images | s/epoch best | s/epoch median | samples/s | peak RSS (MiB) "
    "| test acc | baseline/generated |"
)


def epoch_stats(rounds: list[list[float]]) -> tuple[float, float]:
    """(best, median) seconds per epoch over each round's epochs after its first (the first pays the warm-up)."""
    steady = [s for seconds in rounds for s in seconds[1:] or seconds]
    return min(steady), statistics.median(steady)


def summarize(rounds: list[dict]) -> dict:
    """One loop's worker results, one per round, merged: best / median seconds per epoch and samples per second.

    The statistics pool every round's epochs after its first; accuracy is the rounds' mean (each round has its own
    seed), memory their peak.
    """
    best, median = epoch_stats([result["epoch_seconds"] for result in rounds])
    accuracies = [result["test_accuracy"] for result in rounds]
    merged = rounds[0] | {
        "rounds": len(rounds),
        "seeds": [result.get("seed") for result in rounds],
        "epoch_seconds": [s for result in rounds for s in result["epoch_seconds"]],
        "test_accuracies": accuracies,
        "test_accuracy": statistics.mean(accuracies),
        "peak_rss_mb": max(result["peak_rss_mb"] for result in rounds),
    }
    return merged | {"best_s": best, "median_s": median, "samples_per_s": merged["train_samples"] / median}


def ratios(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    """Per (model, framework, loop) of a generated loop: baseline / its median seconds, and the accuracy change."""
    found = {(r["model"], r["framework"], r["loop"]): r for r in rows}
    out = {}
    for (model, framework, loop), row in found.items():
        base = found.get((model, framework, "baseline"))
        if loop != "baseline" and base is not None:
            out[(model, framework, loop)] = {
                "speedup": base["median_s"] / row["median_s"],
                "accuracy_points": 100 * (row["test_accuracy"] - base["test_accuracy"]),
                "accuracy_error": accuracy_error(base, row),
            }
    return out


def accuracy_error(base: dict, row: dict) -> float | None:
    """The standard error, in points, of the difference of two rows' mean accuracies over their rounds' seeds.

    Seed-to-seed variation after a few epochs is a few tenths of a point, the size of the 0.3-point criterion; this
    says how far the mean difference can be trusted. None with fewer than two rounds.
    """
    runs = [base.get("test_accuracies", []), row.get("test_accuracies", [])]
    if min(len(r) for r in runs) < 2:
        return None
    return 100 * math.sqrt(sum(statistics.variance(r) / len(r) for r in runs))


def precision_ratios(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (model, framework) with a generated-bf16 row: float32's median seconds / bf16's (> 1: bf16 is faster),
    and the accuracy change, bf16 minus float32, in points."""
    found = {(r["model"], r["framework"], r["loop"]): r for r in rows}
    out = {}
    for (model, framework, loop), row in found.items():
        float32 = found.get((model, framework, "generated"))
        if loop == "generated-bf16" and float32 is not None:
            out[(model, framework)] = {
                "speedup": float32["median_s"] / row["median_s"],
                "accuracy_points": 100 * (row["test_accuracy"] - float32["test_accuracy"]),
                "accuracy_error": accuracy_error(float32, row),
            }
    return out


def _precision_lines(rows: list[dict]) -> list[str]:
    """The bf16 paragraph: one line per (model, framework) measured in both precisions; none without --bf16."""
    found = precision_ratios(rows)
    if not found:
        return []
    lines = ["bf16 against float32, the generated loops (float32 median / bf16 median; > 1: bf16 is faster):", ""]
    for (model, framework), ratio in found.items():
        error = f" +- {ratio['accuracy_error']:.2f}" if ratio["accuracy_error"] is not None else ""
        lines.append(
            f"- {model}, {framework}: **{ratio['speedup']:.2f}x** (acc {ratio['accuracy_points']:+.2f}{error} pt)"
        )
    return [*lines, ""]


def _row(row: dict, ratio: dict | None) -> str:
    """One Markdown table row."""
    speed = ""
    if ratio:
        error = f" +- {ratio['accuracy_error']:.2f}" if ratio["accuracy_error"] is not None else ""
        speed = f"**{ratio['speedup']:.2f}x** (acc {ratio['accuracy_points']:+.2f}{error} pt)"
    return (
        f"| {row['model']} | {row['framework']} | {row['loop']} | {row['batch_size']} | {row['train_samples']} "
        f"| {row['best_s']:.3f} | {row['median_s']:.3f} | {row['samples_per_s']:.0f} | {row['peak_rss_mb']:.0f} "
        f"| {row['test_accuracy']:.4f} | {speed} |"
    )


def markdown(rows: list[dict], build: dict, machine: str, settings: str) -> str:
    """The whole report: machine, settings, the table, the build timing and the GPU note."""
    found = ratios(rows)
    lines = [
        "# Benchmark: generated loops vs the source projects' loops",
        "",
        f"Machine: {machine}",
        f"Settings: {settings}",
        "",
        HEADER,
        "|" + "---|" * (HEADER.count("|") - 1),
    ]
    lines += [_row(row, found.get((row["model"], row["framework"], row["loop"]))) for row in rows]
    lines += [
        "",
        "s/epoch: the training pass only (validation excluded), best and median of the epochs after the first "
        "(of every round, where the two loops alternated over several). "
        "baseline/generated: ratio of the medians (> 1: the generated loop is faster); acc: test accuracy change, "
        "generated minus baseline, in points, of the means over the rounds' seeds, +- its standard error. "
        "Peak RSS: the whole worker process. "
        "generated-xla: the generated Keras loop with `--jit-compile on` (an opt-in; the default is Keras's auto, "
        "which is off on a CPU). keras-jax, keras-torch: the Keras loops on Keras's jax and torch backends; "
        "generated-bf16: the generated loop with `--precision bf16`.",
        "",
        *_precision_lines(rows),
        f"`fmnist-dsl build` of {build['specs']} example specs: {build['seconds']:.2f} s wall "
        f"(a fresh process); frameworks imported: {', '.join(build['frameworks_imported']) or 'none'}.",
        "",
        gpu_line(rows),
        "",
        "![seconds per epoch](results.png)",
        "",
    ]
    return "\n".join(lines)


def gpu_line(rows: list[dict]) -> str:
    """The GPU target against this run's generated PyTorch MLP row, or why it was not measured."""
    row = next((r for r in rows if (r["model"], r["framework"], r["loop"]) == ("mlp", "torch", "generated")), None)
    if row is None or not row.get("gpu"):
        return f"{GPU_TARGET}: not measured; this run had no GPU."
    verdict = "met" if row["median_s"] <= GPU_TARGET_SECONDS else "not met"
    figure = f"{row['median_s']:.3f} s/epoch median on {row['gpu']} at batch {row['batch_size']}"
    return f"{GPU_TARGET}: {figure}, {verdict}."


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and widest vector extension from /proc/cpuinfo, or what platform says.

    The ratios move with the CPU (the README compares two machines), and a model name such as "AMD EPYC" does not
    tell two machines apart; the extension oneDNN's kernels use does a little better.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8")
    except OSError:
        text = ""
    first_cpu = text.split("\n\n", 1)[0].splitlines()
    info = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first_cpu)}
    flags = set(info.get("flags", "").split())
    vector = next((name for flag, name in VECTOR_EXTENSIONS if flag in flags), None)
    name = info.get("model name") or platform.processor() or platform.machine()
    return f"{name} ({vector})" if vector else name


def machine(rows: list[dict]) -> str:
    """One line: CPU model, cores, GPU (as the PyTorch workers saw it), Python."""
    gpus = {row["gpu"] for row in rows if row["framework"] == "torch"}
    gpu = ", ".join(sorted(g for g in gpus if g)) or ("none" if gpus else "not checked (no PyTorch run)")
    return f"{cpu_model()}, {os.cpu_count()} cores; GPU: {gpu}; Python {platform.python_version()}"


def chart(rows: list[dict], path: Path) -> None:
    """Grouped bars: median seconds per epoch of each loop, one group per (model, framework), ratios on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["model"], r["framework"]) for r in rows))
    loops = list(dict.fromkeys(r["loop"] for r in rows))
    found = {(r["model"], r["framework"], r["loop"]): r for r in rows}
    speed = ratios(rows)
    figure, axis = plt.subplots(figsize=(max(4, 2.4 * len(groups)), 4))
    width = 0.8 / len(loops)
    for n, loop in enumerate(loops):
        offset = (n - (len(loops) - 1) / 2) * width
        bars = [(i + offset, found[(*group, loop)]) for i, group in enumerate(groups) if (*group, loop) in found]
        axis.bar([x for x, _ in bars], [row["median_s"] for _, row in bars], width, label=loop, color=COLOURS[n])
        for x, row in bars:
            if (key := (row["model"], row["framework"], loop)) in speed:
                axis.annotate(f"{speed[key]['speedup']:.2f}x", (x, row["median_s"]), ha="center", va="bottom")
    axis.set_xticks(range(len(groups)), [f"{m}\n{f}" for m, f in groups])
    axis.set_ylim(0, 1.35 * max(r["median_s"] for r in rows))
    axis.set_ylabel("seconds per epoch (median)")
    axis.set_title("baseline vs generated training loops")
    axis.legend(loc="upper center", ncol=len(loops))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
