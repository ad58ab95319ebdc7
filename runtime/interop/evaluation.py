"""Score a finished run again: reload the model it saved and predict the test split its recipe names
(or the official test set). Only the framework that trained the run is imported.
"""

from pathlib import Path

import numpy as np

from runtime.common.constants import LOSS_EPSILON
from runtime.common.data import load_split_arrays
from runtime.common.recipe import Recipe, load_splits
from runtime.common.rundir import read_metrics, read_run_record
from runtime.interop import export

AGREEMENT_TOL = 1e-3  # a reloaded model must give back the run's test accuracy within this


def run_recipe(run_dir: Path) -> Recipe:
    """The recipe run.json recorded (JSON lists back to the tuple the split is)."""
    return Recipe.from_dict(read_run_record(run_dir / "run.json")["recipe"])


def _test_arrays(run_dir: Path, data_dir: str | None, official: bool) -> tuple[np.ndarray, np.ndarray]:
    """The run's own test split, or the official 10,000 test images."""
    if official:
        data = load_split_arrays(data_dir)
        return data.test_images, data.test_labels
    splits = load_splits(run_recipe(run_dir), data_dir)
    return splits.x_test, splits.y_test


def test_figures(package, run_dir: Path, data_dir: str | None = None, official_test: bool = False) -> dict:
    """Test accuracy and loss of the run's saved model, next to the ones metrics.json recorded.

    official_test scores a recipe that carves its own test split on the official test set instead; the recorded
    figures then belong to another test set, so there is nothing to reproduce.
    """
    x_test, y_test = _test_arrays(run_dir, data_dir, official_test)
    outputs = export.predict(export.source_framework(run_dir), export.load_trained(package, run_dir), x_test)
    probabilities = export.probabilities(package.OUTPUT, outputs)
    picked = probabilities[np.arange(len(y_test)), y_test]
    recorded = read_metrics(run_dir / "metrics.json")
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    return {
        "test_samples": len(y_test),
        "test_accuracy": accuracy,
        "test_loss": float(np.mean(-np.log(np.clip(picked, LOSS_EPSILON, 1.0)))),
        "recorded_test_accuracy": recorded.get("test_accuracy"),
        "reproduced": official_test or abs(accuracy - recorded.get("test_accuracy", np.nan)) <= AGREEMENT_TOL,
    }
