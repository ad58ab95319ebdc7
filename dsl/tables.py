"""The rows of a generated package's LAYERS and WEIGHTS tables: the compiler prints them, the runtime reads them.

Both sides use these classes, and the runtime reads each value by its field's name, so a column added here reaches
the printed tables and every reader at once. A package printed for other columns (built by another version) fails
when it is imported, with the row and the field named, not later in training.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LayerRow:
    """One DSL layer: what `summary`, `parity` and the 16-bit output layer look up by name."""

    name: str
    kind: str  # the DSL's layer name: Dense, Conv2D, ...
    output_attr: str  # the PyTorch submodule whose output is this layer's
    output_shape: tuple[int, ...]  # channels-last, without the batch axis
    trainable: int
    non_trainable: int  # state: BatchNorm's moving statistics

    def __post_init__(self) -> None:
        _check(self, str, str, str, tuple, int, int)


@dataclass(frozen=True)
class WeightRow:
    """One weight: what runtime.common.initial_weights draws, in Keras's layout, for both frameworks."""

    layer: str
    variable: str  # Keras's name: kernel, bias, gamma, beta, moving_mean, moving_variance
    shape: tuple[int, ...]  # Keras's (the DSL's) layout
    initializer: str  # a spec initialiser, or "ones" for BatchNorm's gamma and moving variance
    flattened: tuple[int, int, int] | None  # the feature map whose flattened features this weight acts on

    def __post_init__(self) -> None:
        _check(self, str, str, tuple, str, (tuple, type(None)))


def _check(row, *types) -> None:
    """Raise TypeError naming the field when a value is not of its column's type (tuples hold ints)."""
    for field, expected in zip(fields(row), types, strict=True):
        value = getattr(row, field.name)
        if not isinstance(value, expected) or (isinstance(value, tuple) and not all(type(n) is int for n in value)):
            raise TypeError(
                f"{type(row).__name__}.{field.name}: {value!r} is not a {field.type}; the package was built for other "
                "columns: build it again with this fmnist-dsl"
            )
