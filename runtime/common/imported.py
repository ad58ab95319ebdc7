"""What `fmnist-dsl import` reads from a model file, whatever its framework: DSL layers, weights in the DSL's layout.

The readers (runtime/interop/importing/) each map their framework's layers to these through a table, one entry per
source layer type; a type or option the DSL cannot say is an ImportRefused naming the layer, its index and what is
missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# The DSL's activation functions (dsl.layers.Function), by the names the frameworks give them.
ACTIVATIONS = {
    "linear": "none",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "elu": "elu",
    "gelu": "gelu",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
}
# Layers whose `activation` argument an activation right after them can become.
TAKES_ACTIVATION = ("Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D")
# The trained-model weights of each DSL layer kind, in the order of the package's WEIGHTS table.
BATCHNORM_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


class ImportRefused(ValueError):
    """A model the DSL cannot say, or a file that is not one; the message is the one line to print."""


@dataclass
class ImportedLayer:
    """One DSL layer: its kind, every argument written out, its weights in Keras's (the DSL's) layout."""

    kind: str
    arguments: dict
    source: str  # how the source names it: "layer 'conv1' (index 0, Conv2D)"
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    block: list[ImportedLayer] = field(default_factory=list)  # a Residual's layers
    shortcut: list[ImportedLayer] = field(default_factory=list)  # a projection's Conv2D and BatchNorm


@dataclass
class ImportedModel:
    """A source model said in the DSL, its weights, and how to run the source itself for the proof."""

    source: str  # the file, as the header comment names it
    input_shape: tuple[int, int, int]
    layers: list[ImportedLayer]
    predict: Callable[[np.ndarray], np.ndarray]  # NHWC images in [0, 1] -> the source model's outputs
    notes: list[str] = field(default_factory=list)  # meanings the header comment states
    training_changes: list[str] = field(default_factory=list)  # what the DSL trains differently


def refuse(where: str, missing: str) -> ImportRefused:
    """The one-line refusal of a layer: where it is in the source and what the DSL lacks."""
    return ImportRefused(f"{where}: {missing}")


def activation(name: str, where: str) -> str:
    """The DSL's activation for a framework's name, or a refusal."""
    if name not in ACTIVATIONS:
        raise refuse(where, f"activation {name!r} is not one of the DSL's ({', '.join(sorted(ACTIVATIONS))})")
    return ACTIVATIONS[name]


def add_activation(layers: list[ImportedLayer], name: str, where: str, fold: bool) -> None:
    """Append an activation: as the previous Dense or convolution's own `activation` when `fold` and it has none,
    else as an Activation layer. `none` (an identity) adds nothing."""
    if name == "none":
        return
    previous = layers[-1] if layers else None
    if (
        (fold or previous is not None and previous.kind == "Residual")  # an add has no activation of its own
        and previous is not None
        and previous.kind in (*TAKES_ACTIVATION, "Residual")
        and previous.arguments["activation"] == "none"
    ):
        previous.arguments["activation"] = name
        return
    layers.append(ImportedLayer("Activation", {"name": name}, where))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's `same` padding of one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def dilated_span(kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """The window a dilated kernel covers, (k - 1) * d + 1 per axis: what `same` pads for (docs/semantics.md; the
    spec checks' dsl.shapes.effective_window, which runtime does not import)."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))


def padding_meaning(
    sizes: tuple[int, int], window: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int]
) -> str | None:
    """`valid` or `same` for explicit (top, bottom, left, right) pads of a window (a dilated kernel's span) over a
    (height, width) map; None when they are neither."""
    if not any(pads):
        return "valid"
    same = [same_padding(n, k, s) for n, k, s in zip(sizes, window, stride)]
    return "same" if (pads[0], pads[1]) == same[0] and (pads[2], pads[3]) == same[1] else None


def zero_padding(pads: tuple[int, int, int, int], where: str) -> ImportedLayer:
    """The DSL's ZeroPadding of (top, bottom, left, right) pads."""
    top, bottom, left, right = pads
    return ImportedLayer("ZeroPadding", {"padding": ((top, bottom), (left, right))}, where)


def dense_or_conv(kind: str, where: str, activation_name: str = "none", **arguments) -> ImportedLayer:
    """A Dense or convolution with the DSL's default initialisers unless the source names its own."""
    values = {"activation": activation_name, "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    return ImportedLayer(kind, values | arguments, where)


def conv_kind(in_channels: int, out_channels: int, groups: int) -> tuple[str, dict]:
    """A PyTorch or ONNX convolution's DSL layer: one group per input channel is a DepthwiseConv2D."""
    if groups > 1 and groups == in_channels:
        return "DepthwiseConv2D", {"depth_multiplier": out_channels // in_channels}
    return "Conv2D", {"filters": out_channels, "groups": groups}


@dataclass
class Pad:
    """An explicit pad op waiting for the layer after it: the window's own padding (LayerChain._owns_pad), else a
    ZeroPadding layer."""

    pads: tuple[int, int, int, int]  # top, bottom, left, right
    fill: float
    sizes: tuple[int, int]  # (height, width) before the pad
    where: str
    name: str | None  # the submodule it came from, if any


class LayerChain:
    """The state of reading a chain of ops: the DSL layers so far, a pending explicit pad, the flattened map."""

    def __init__(self):
        self.layers, self.changes = [], []
        self.pad: Pad | None = None
        self.flattened = None  # (height, width, channels) of the map a flatten made, until the next Dense
        self.pooled = None  # where a global pool that kept its (1, 1) map is, until the flatten that drops it

    def flush(self) -> None:
        """A pending pad that is not a window's own: a ZeroPadding layer."""
        pad, self.pad = self.pad, None
        if pad is not None and pad.fill != 0:
            raise refuse(pad.where, f"a pad filled with {pad.fill} not before a pool it belongs to: not in the DSL")
        if pad is not None:
            self.layers.append(zero_padding(pad.pads, pad.where))

    def add(self, layer: ImportedLayer) -> None:
        self._check_pooled()
        self.flush()
        self.layers.append(layer)

    def _check_pooled(self) -> None:
        if self.pooled is not None:
            raise refuse(self.pooled, "a global pool whose (1, 1) map is not flattened next: the DSL's gives a vector")

    def finish(self) -> None:
        """The end of the chain: a pending zero pad is a last ZeroPadding; a kept (1, 1) map is not the DSL's."""
        self._check_pooled()
        self.flush()

    def activation(self, name: str, where: str) -> None:
        """An activation op. PyTorch spells a layer's own activation and an Activation layer after it alike, so one
        right after a Dense or a convolution is read as the layer's own."""
        self.flush()
        add_activation(self.layers, name, where, fold=True)

    def flatten(self, feature_map: tuple[int, int, int], where: str) -> None:
        """A flatten of a (height, width, channels) map; the one after a global pool only drops its (1, 1)."""
        if self.pooled is not None:
            self.pooled = None
            return
        self.flattened = feature_map
        self.add(ImportedLayer("Flatten", {}, where))

    def named_padding(self, where: str, padding: str) -> str:
        """A window's own `valid` or `same` (PyTorch's string padding); a pad before it is a ZeroPadding."""
        self.flush()
        return padding

    def _owns_pad(self, name: str | None, sizes, window, stride, pads) -> bool:
        """Whether the pending pad is the window's own: filled with other than zeros, named `<window>_pad`, or an
        exporter's unnamed pad that makes TensorFlow's `same` with the window's own padding."""
        pad = self.pad
        if pad.fill != 0 or name is not None and pad.name == f"{name}_pad":
            return True
        combined = tuple(a + b for a, b in zip(pads, pad.pads))
        return pad.name is None and padding_meaning(pad.sizes, window, stride, combined) == "same"

    def window_padding(self, where: str, name, sizes, window, stride, pads, fill: float | None) -> str:
        """`valid` or `same` for a window's own (top, bottom, left, right) pads plus the explicit pad before it that
        is its own. `fill`: the value padded cells hold (0 for a convolution, -inf for a max pool), None when they
        are left out (an average pool's). Other zero padding becomes a ZeroPadding layer before it."""
        if self.pad is not None and fill is not None and self._owns_pad(name, sizes, window, stride, pads):
            pad, self.pad = self.pad, None
            if pad.fill != fill:
                raise refuse(where, f"a pad filled with {pad.fill} before it; the DSL pads this layer with {fill}")
            pads, sizes = tuple(a + b for a, b in zip(pads, pad.pads)), pad.sizes
        self.flush()
        meaning = padding_meaning(sizes, window, stride, pads)
        if meaning is None and fill == 0:
            self.layers.append(zero_padding(pads, where))
            return "valid"
        if meaning is None:
            same = [same_padding(n, k, s) for n, k, s in zip(sizes, window, stride)]
            raise refuse(
                where,
                f"padding (top, bottom, left, right) {pads} is not TensorFlow's `same` {(*same[0], *same[1])} for "
                "this input and stride, and padding with zeros first would change its result",
            )
        return meaning


def flat_layers(layers: list[ImportedLayer]) -> list[ImportedLayer]:
    """One per row of a package's LAYERS table: each Residual's block's and projection's layers, then itself."""
    return [inner for layer in layers for inner in (*flat_layers(layer.block), *layer.shortcut, layer)]


def spec_layers(layers: list[ImportedLayer]) -> list[tuple[str, dict]]:
    """(kind, arguments) per layer, a Residual's block as its `layers` argument."""
    return [
        (layer.kind, layer.arguments | ({"layers": spec_layers(layer.block)} if layer.kind == "Residual" else {}))
        for layer in layers
    ]


# The DSL's projection shortcut (dsl.shapes.projection): a 1x1 Conv2D without bias or activation, strided by the
# block's reduction, then a BatchNorm with the DSL's defaults. Its padding is either: a 1x1 window pads nothing.
PROJECTION_CONV = {"kernel_size": (1, 1), "use_bias": False, "activation": "none", "dilation_rate": (1, 1)}
PROJECTION_CONV |= {"groups": 1}
PROJECTION_NORM = {"momentum": 0.99, "epsilon": 0.001}


def residual(
    block: list[ImportedLayer], shortcut: list[ImportedLayer], where: str, folded: bool = False
) -> ImportedLayer:
    """A Residual of two paths joined by the add `where`: `block` and `shortcut` (none: identity), swapped when only
    `block` is the DSL's projection; else a refusal naming the shortcut. `folded`: an inference graph's, whose
    projection's BatchNorm may be folded into its convolution's bias."""
    try:
        return _residual(block, shortcut, where, folded)
    except ImportRefused as refused:
        if not shortcut:
            raise
        try:
            return _residual(shortcut, block, where, folded)
        except ImportRefused:
            raise refused from None


def _residual(block: list[ImportedLayer], shortcut: list[ImportedLayer], where: str, folded: bool) -> ImportedLayer:
    if not block:
        raise refuse(where, "its block is empty: not in the DSL")
    if not shortcut:
        return ImportedLayer("Residual", {"shortcut": "identity", "activation": "none"}, where, block=block)
    if folded and [layer.kind for layer in shortcut] == ["Conv2D"] and shortcut[0].arguments["use_bias"]:
        shortcut = _unfolded(shortcut[0])
    kinds = [layer.kind for layer in shortcut]
    if kinds != ["Conv2D", "BatchNorm"]:
        said = ", ".join(f"{layer.kind} ({layer.source})" for layer in shortcut)
        raise refuse(where, f"its shortcut {said} is not the DSL's: nothing, or a 1x1 Conv2D and a BatchNorm")
    conv, norm = shortcut
    for option, value in PROJECTION_CONV.items():
        if _plain(conv.arguments[option]) != value:
            said = f"{option}={conv.arguments[option]!r} in a projection shortcut"
            raise refuse(conv.source, f"{said}: the DSL's projection has {option}={value!r}")
    for option, value in PROJECTION_NORM.items():  # its strides (the block's reduction) build_twins checks
        if norm.arguments[option] != value:
            said = f"{option}={norm.arguments[option]!r} in a projection shortcut"
            raise refuse(norm.source, f"{said}: the DSL's projection's BatchNorm has {option}={value!r}")
    arguments = {"shortcut": "projection", "activation": "none"}
    return ImportedLayer("Residual", arguments, where, block=block, shortcut=shortcut)


def _unfolded(conv: ImportedLayer) -> list[ImportedLayer]:
    """A 1x1 convolution with a bias as the DSL's projection, the same inference: the convolution without it, then a
    BatchNorm that adds it (mean 0, variance 1, a gamma that undoes the epsilon)."""
    bias = conv.weights["bias"]
    conv = ImportedLayer(
        "Conv2D", conv.arguments | {"use_bias": False}, conv.source, {"kernel": conv.weights["kernel"]}
    )
    gamma = np.full_like(bias, np.sqrt(1 + PROJECTION_NORM["epsilon"]))
    variables = dict(zip(BATCHNORM_VARIABLES, (gamma, bias, np.zeros_like(bias), np.ones_like(bias))))
    return [conv, ImportedLayer("BatchNorm", dict(PROJECTION_NORM), conv.source, variables)]


def _plain(value):
    return tuple(value) if isinstance(value, list) else value
