"""Test-set figures from labels and predictions: accuracy, confusion matrix, per-class precision/recall/F1."""

from __future__ import annotations

import numpy as np

from runtime.common.data import CLASS_NAMES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def per_class(matrix: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support of each class, named; 0 where a ratio is undefined."""
    true_positives = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, actual, strict=True)
    ]


def test_metrics(y_true: np.ndarray, y_pred: np.ndarray, loss: float) -> dict:
    """metrics.json: accuracy and loss on the test set, the confusion matrix and per-class figures."""
    matrix = confusion_matrix(y_true, y_pred)
    classes = per_class(matrix)
    return {
        "test_accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "test_loss": float(loss),
        "test_samples": int(len(y_true)),
        "macro_f1": float(np.mean([row["f1"] for row in classes])),
        "class_names": list(CLASS_NAMES),
        "confusion_matrix": matrix.tolist(),
        "per_class": classes,
    }
