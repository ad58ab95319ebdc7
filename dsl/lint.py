"""Lint rules: valid specs that train, but worse than their author likely meant. dsl/codes.py explains each code."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from dsl.codes import LARGE_DENSE_WEIGHTS, SMALL_BATCH
from dsl.layers import (
    ActivationLayer,
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    LayerNorm,
    MaxPool,
    Residual,
    SeparableConv2D,
)
from dsl.loader import line_of, parse_document, read_spec_text
from dsl.provenance import training_differences
from dsl.shapes import LayerShape, effective_window, infer_shapes
from dsl.spec import Spec

PROBABILITIES = ("softmax", "log_softmax")
# Layers that neither mix features nor change the shape: a Dense after Flatten and these is still "after Flatten".
SHAPE_KEEPING = (BatchNorm, Dropout, ActivationLayer, LayerNorm)
CONVOLUTIONS = (Conv2D, DepthwiseConv2D, SeparableConv2D)
POOLS = (MaxPool, AvgPool)

# (field, code, message) before the field is located; the field is a path inside the spec.
RawFinding = tuple[str, str, str]


@dataclass(frozen=True)
class Finding:
    """One lint finding, printed as `file:line: CODE message`."""

    file: str
    line: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.code} {self.message}"


def lint_file(path: str | Path) -> list[Finding]:
    """The findings of the spec at `path` that it does not ignore; raises SpecError if it does not load."""
    return lint_text(read_spec_text(path), Path(path).name)


def lint_text(text: str, filename: str = "<spec>") -> list[Finding]:
    """The findings of spec text that it does not ignore, in layer order."""
    spec, root = parse_document(text, filename)
    return lint_spec(spec, root, filename, text)


def lint_spec(spec: Spec, root: yaml.Node | None, filename: str, text: str = "") -> list[Finding]:
    """Every rule's findings on a loaded spec (and its `text`, for what its comments say), without the codes its
    `lint.ignore` lists."""
    ignored = set(spec.lint.ignore)
    return [
        Finding(filename, line_of(root, field) if root is not None else None, code, message)
        for field, code, message in raw_findings(spec, text)
        if code not in ignored
    ]


def raw_findings(spec: Spec, text: str = "") -> list[RawFinding]:
    """Every rule's findings, ignores included, sorted by the layer they are about."""
    layers = spec.layer_list()
    shapes = infer_shapes(spec)
    chains = list(_chains("layers", layers, shapes))
    findings = [finding for chain in chains for finding in (*_window_rules(chain), *_order_rules(chain))]
    findings += [finding for chain in chains for finding in _normalisation_rules(chain)]
    findings += list(_size_rules(spec, chains))
    findings += list(_imported_rules(layers, text))
    findings += list(_training_rules(spec))
    return sorted(findings, key=lambda finding: (_layer_index(finding[0]), finding[1]))


# One layer of a chain: (field path, kind, arguments, shapes).
Entry = tuple[str, str, object, LayerShape]


def _chains(where: str, layers: list[tuple[str, object]], shapes: list[LayerShape]) -> Iterator[list[Entry]]:
    """The spec's layer list, then each Residual's block (nested ones too): the rules read each as a chain."""
    chain = [
        (f"{where}[{index}].{kind}", kind, layer, shape)
        for index, ((kind, layer), shape) in enumerate(zip(layers, shapes))
    ]
    yield chain
    for inner_where, _, layer, shape in chain:
        if isinstance(layer, Residual):
            yield from _chains(f"{inner_where}.layers", layer.layer_list(), list(shape.block))


def _layer_index(field: str) -> int:
    """Layers in order; findings about the training section come last."""
    return int(field.split("[")[1].split("]")[0]) if field.startswith("layers[") else 1 << 30


def _activation(layer) -> str:
    if isinstance(layer, ActivationLayer):
        return layer.name
    return getattr(layer, "activation", "none")


def _activation_field(layer) -> str:
    return "name" if isinstance(layer, ActivationLayer) else "activation"


def _order_rules(chain: list[Entry]) -> Iterator[RawFinding]:
    """FM101 to FM104: what a layer means given its neighbour."""
    for (where, kind, layer, _), (next_where, next_kind, after, _) in zip(chain, [*chain[1:], ("", None, None, None)]):
        if isinstance(layer, (Dense, *CONVOLUTIONS)) and layer.use_bias and layer.activation == "none":
            if isinstance(after, BatchNorm):
                yield (
                    f"{where}.use_bias",
                    "FM101",
                    f"{kind}'s bias is cancelled by the BatchNorm after it: set use_bias: false",
                )
        if isinstance(layer, Dropout) and isinstance(after, BatchNorm):
            yield (
                where,
                "FM102",
                "Dropout directly before BatchNorm shifts its statistics between training and inference",
            )
        if _activation(layer) in PROBABILITIES and after is not None:
            message = f"{_activation(layer)} is not the last layer: {next_kind} follows it"
            yield f"{where}.{_activation_field(layer)}", "FM103", message
        if isinstance(after, ActivationLayer) and _activation(layer) != "none":
            message = f"Activation {after.name} directly after {kind}'s {_activation(layer)}: two activations in a row"
            yield f"{next_where}.name", "FM104", message


def _window_rules(chain: list[Entry]) -> Iterator[RawFinding]:
    """FM105 and FM106: windows that leave pixels unread."""
    for where, _, layer, shape in chain:
        if not isinstance(layer, (*CONVOLUTIONS, *POOLS)):
            continue
        is_conv = isinstance(layer, CONVOLUTIONS)
        window = effective_window(layer.kernel_size, layer.dilation_rate) if is_conv else layer.pool_size
        strides = layer.strides or window
        if any(s > k for s, k in zip(strides, window)):
            message = f"stride {_pair(strides)} exceeds the {_pair(window)} window: pixels between are never read"
            yield f"{where}.strides", "FM105", message
        dropped = [(n - k) % s for n, k, s in zip(shape.input_shape, window, strides)]
        if layer.padding == "valid" and any(dropped):  # the shape check has made sure each window fits
            size = "x".join(map(str, shape.input_shape[:2]))
            message = (
                f"a valid {_pair(window)} window with stride {_pair(strides)} on the {size} input never reads its last "
                f"{dropped[0]} row(s) and {dropped[1]} column(s)"
            )
            yield f"{where}.{'kernel_size' if is_conv else 'pool_size'}", "FM106", message


def _normalisation_rules(chain: list[Entry]) -> Iterator[RawFinding]:
    """FM111: a LayerNorm with nothing to normalise."""
    for where, _, layer, shape in chain:
        if isinstance(layer, LayerNorm) and shape.input_shape[-1] == 1:
            message = f"LayerNorm over the single channel of {shape.input_shape}: its output is constant"
            yield where, "FM111", message


def _imported_rules(layers: list[tuple[str, object]], text: str) -> Iterator[RawFinding]:
    """FM112: a layer the `fmnist-dsl import` header says trains differently from the source model's."""
    for index, change in training_differences(text):
        if index < len(layers):
            source, _, reason = change.partition(": ")
            message = f"trains differently from the imported source's {source}: {reason.split(': ')[0]}"
            yield f"layers[{index}].{layers[index][0]}", "FM112", message


def _pair(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _size_rules(spec: Spec, chains: list[list[Entry]]) -> Iterator[RawFinding]:
    """FM107 and FM108: sizes that train badly (Flatten is never inside a Residual)."""
    after_flatten = False
    for where, _, layer, shape in chains[0]:
        if isinstance(layer, Flatten):
            after_flatten = True
        elif isinstance(layer, Dense) and after_flatten:
            after_flatten = False
            weights = shape.input_shape[0] * layer.units
            if weights > LARGE_DENSE_WEIGHTS:
                message = (
                    f"{weights:,} weights ({shape.input_shape[0]:,} inputs x {layer.units:,} units) in the first Dense "
                    f"after Flatten, more than {LARGE_DENSE_WEIGHTS:,}"
                )
                yield f"{where}.units", "FM107", message
        elif not isinstance(layer, SHAPE_KEEPING):
            after_flatten = False
    batch_norms = sorted(
        (_layer_index(where), where) for chain in chains for where, _, layer, _ in chain if isinstance(layer, BatchNorm)
    )
    if spec.training is not None and batch_norms and spec.training.batch_size < SMALL_BATCH:
        message = (
            f"BatchNorm with batch_size {spec.training.batch_size}: its batch statistics are noise below {SMALL_BATCH}"
        )
        yield batch_norms[0][1], "FM108", message


def _training_rules(spec: Spec) -> Iterator[RawFinding]:
    """FM109 and FM110: rules of the training section that cannot act within its epochs."""
    training = spec.training
    if training is None:
        return
    schedule, epochs = training.schedule, training.epochs
    waits = {"step": "step_size", "reduce_on_plateau": "patience"}
    if schedule is not None and schedule.name in waits and getattr(schedule, waits[schedule.name]) >= epochs:
        wait = waits[schedule.name]
        message = (
            f"{schedule.name}'s {wait} {getattr(schedule, wait)} is not below epochs {epochs}: the rate never changes"
        )
        yield f"training.schedule.{wait}", "FM109", message
    stopping = training.early_stopping
    if stopping is not None and stopping.patience >= epochs:
        message = f"early stopping's patience {stopping.patience} is not below epochs {epochs}: it can never stop"
        yield "training.early_stopping.patience", "FM110", message
