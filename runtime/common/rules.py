"""Schedules and stopping rules, spelled once: the PyTorch loop runs them, the Keras callbacks follow them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.common.recipe import Recipe


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def scheduled_lr(recipe: Recipe, epoch: int) -> float:
    """The learning rate of a 0-based epoch under a step or cosine schedule; the base rate otherwise."""
    base, schedule = float(recipe.optimizer["learning_rate"]), recipe.schedule or {}
    if schedule.get("name") == "step":
        return base * schedule["gamma"] ** (epoch // schedule["step_size"])
    if schedule.get("name") == "cosine":
        low = schedule["min_learning_rate"]
        return low + (base - low) * (1 + math.cos(math.pi * epoch / recipe.epochs)) / 2
    return base


@dataclass
class Plateau:
    """Keras's ReduceLROnPlateau with min_delta=0 and no cooldown, spelled out for PyTorch."""

    factor: float
    patience: int
    min_learning_rate: float
    best: float = math.inf
    wait: int = 0

    def step(self, value: float, lr: float) -> float:
        """The rate for the next epoch, given this epoch's monitored value and rate."""
        if value < self.best:
            self.best, self.wait = value, 0
            return lr
        self.wait += 1
        if self.wait >= self.patience and lr > np.float32(self.min_learning_rate):
            self.wait = 0
            return max(lr * self.factor, self.min_learning_rate)
        return lr


@dataclass
class EarlyStop:
    """Keras's EarlyStopping (min_delta=0, no baseline), spelled out for PyTorch."""

    patience: int
    best: float = math.inf
    wait: int = 0
    best_epoch: int = -1

    def step(self, value: float, epoch: int) -> tuple[bool, bool]:
        """(improved, stop) after a 0-based epoch with this monitored value."""
        self.wait += 1
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        return False, self.wait >= self.patience and epoch > 0


def check_finite(loss: float, epoch: int, framework: str) -> None:
    """Stop the run with a clear message when the loss is NaN or infinite."""
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"{framework}: training loss became {loss} in epoch {epoch + 1}; stopped. The last finite checkpoint"
            " and history are kept. Try a lower learning rate or a smaller batch size."
        )
