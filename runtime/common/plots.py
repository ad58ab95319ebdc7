"""PNG figures of a run: learning curves, confusion matrix, sample predictions, framework comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from runtime.common.data import CLASS_NAMES  # noqa: E402


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _curves(axes, history: list[dict], label: str = "", style: str = "-") -> None:
    """Loss on axes[0], accuracy on axes[1], train and validation."""
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        # Markers, so that a one-epoch run still shows its points.
        ax.plot(
            epochs,
            [row[f"train_{metric}"] for row in history],
            style,
            marker="o",
            markersize=3,
            label=f"{label}train".strip(),
        )
        if any(row[f"val_{metric}"] is not None for row in history):
            values = [np.nan if row[f"val_{metric}"] is None else row[f"val_{metric}"] for row in history]
            ax.plot(epochs, values, style, marker="s", markersize=3, label=f"{label}validation".strip(), alpha=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)


def plot_history(history: list[dict], path: Path) -> None:
    """Training and validation loss and accuracy per epoch."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    _curves(axes, history)
    axes[0].legend()
    _save(figure, path)


def plot_confusion(matrix: list[list[int]], path: Path) -> None:
    """The confusion matrix with class names and counts."""
    matrix = np.asarray(matrix)
    figure, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES, rotation=45, ha="right")
    ax.set_yticks(ticks, CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=8)
    _save(figure, path)


def plot_predictions(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, path: Path, count: int = 25) -> None:
    """A grid of test images titled predicted / true, wrong ones in red."""
    side = int(np.ceil(np.sqrt(min(count, len(images)))))
    figure, axes = plt.subplots(side, side, figsize=(2 * side, 2.2 * side))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < min(count, len(images)):
            ax.imshow(images[i].squeeze(), cmap="gray_r")
            color = "black" if y_true[i] == y_pred[i] else "red"
            ax.set_title(f"{CLASS_NAMES[y_pred[i]]}\n(true: {CLASS_NAMES[y_true[i]]})", fontsize=8, color=color)
    _save(figure, path)


def plot_comparison(histories: dict[str, list[dict]], path: Path) -> None:
    """Learning curves of several frameworks overlaid."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (name, history), style in zip(histories.items(), ("-", "--", ":"), strict=False):
        _curves(axes, history, label=f"{name} ", style=style)
    axes[0].legend()
    _save(figure, path)


def plot_class_comparison(accuracies: dict[str, list[float]], disagreement: list[float], path: Path) -> None:
    """Per-class test accuracy of several models as grouped bars, and the share of each class they disagree on."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(2, 1))
    positions, width = np.arange(len(CLASS_NAMES)), 0.8 / len(accuracies)
    for index, (name, values) in enumerate(accuracies.items()):
        top.bar(positions + (index - (len(accuracies) - 1) / 2) * width, values, width, label=name)
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend()
    bottom.bar(positions, disagreement, 0.6, color="gray")
    bottom.set_ylabel("classified\ndifferently")
    bottom.set_xticks(positions, CLASS_NAMES, rotation=45, ha="right")
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    _save(figure, path)
