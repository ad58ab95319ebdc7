"""The resolved model: every value the templates print, decided in Python, immutable.

Where the frameworks spell one meaning differently the IR holds both spellings
(`torch_*`, `keras_*`); templates only print them.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from dsl.tables import LayerRow, WeightRow

Pads = tuple[int, int, int, int]  # left, right, top, bottom: the order nn.ZeroPad2d takes


@dataclass(frozen=True)
class Op:
    """One DSL layer, lowered; `attrs` are its nn.Module attributes in call order."""

    kind: ClassVar[str]
    name: str
    attrs: tuple[str, ...]

    @property
    def output_attr(self) -> str:
        """The PyTorch submodule whose output is this layer's output."""
        return self.attrs[-1]

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        """The runtime.torch.layers classes its PyTorch spelling uses."""
        return ()


@dataclass(frozen=True)
class DenseOp(Op):
    kind: ClassVar[str] = "dense"
    in_features: int
    units: int
    use_bias: bool
    keras_activation: str | None
    torch_activation: str | None
    kernel_initializer: str
    bias_initializer: str


@dataclass(frozen=True)
class Conv2DOp(Op):
    kind: ClassVar[str] = "conv2d"
    in_channels: int
    filters: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    keras_padding: str
    torch_padding: tuple[int, int]
    torch_pad: Pads | None
    use_bias: bool
    keras_activation: str | None
    torch_activation: str | None
    kernel_initializer: str
    bias_initializer: str
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@dataclass(frozen=True)
class DepthwiseConv2DOp(Op):
    """PyTorch: a Conv2d with one group per input channel, the same kernels in the same output order."""

    kind: ClassVar[str] = "depthwiseconv2d"
    in_channels: int
    depth_multiplier: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    keras_padding: str
    torch_padding: tuple[int, int]
    torch_pad: Pads | None
    use_bias: bool
    keras_activation: str | None
    torch_activation: str | None
    kernel_initializer: str
    bias_initializer: str


@dataclass(frozen=True)
class SeparableConv2DOp(DepthwiseConv2DOp):
    kind: ClassVar[str] = "separableconv2d"
    filters: int = field(kw_only=True)

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        return ("SeparableConv2d",)


@dataclass(frozen=True)
class MaxPoolOp(Op):
    kind: ClassVar[str] = "maxpool"
    pool_size: tuple[int, int]
    strides: tuple[int, int]
    keras_padding: str
    torch_padding: tuple[int, int]
    torch_pad: Pads | None


@dataclass(frozen=True)
class AvgPoolOp(MaxPoolOp):
    """`torch_pad`: an asymmetric `same`, which runtime.torch.layers.SamePadAvgPool2d pads and leaves out."""

    kind: ClassVar[str] = "avgpool"

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        return ("SamePadAvgPool2d",) if self.torch_pad else ()


@dataclass(frozen=True)
class GlobalAvgPoolOp(Op):
    kind: ClassVar[str] = "globalavgpool"


@dataclass(frozen=True)
class GlobalMaxPoolOp(Op):
    kind: ClassVar[str] = "globalmaxpool"

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        return ("GlobalMaxPool2d",)


@dataclass(frozen=True)
class ZeroPaddingOp(Op):
    kind: ClassVar[str] = "zeropadding"
    keras_padding: tuple[tuple[int, int], tuple[int, int]]  # (top, bottom), (left, right)
    torch_pad: Pads


@dataclass(frozen=True)
class UpSamplingOp(Op):
    kind: ClassVar[str] = "upsampling"
    size: tuple[int, int]
    interpolation: str


@dataclass(frozen=True)
class LayerNormOp(Op):
    """`torch_class`: nn.LayerNorm on a flat input with gamma and beta both or neither, else ChannelLayerNorm."""

    kind: ClassVar[str] = "layernorm"
    features: int
    epsilon: float
    center: bool
    scale: bool
    torch_class: str

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        return () if self.torch_class.startswith("nn.") else (self.torch_class,)


@dataclass(frozen=True)
class BatchNormOp(Op):
    kind: ClassVar[str] = "batchnorm"
    features: int
    torch_class: str
    keras_momentum: float
    torch_momentum: float
    epsilon: float

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        return (self.torch_class,)


@dataclass(frozen=True)
class DropoutOp(Op):
    kind: ClassVar[str] = "dropout"
    rate: float


@dataclass(frozen=True)
class FlattenOp(Op):
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class ActivationOp(Op):
    kind: ClassVar[str] = "activation"
    keras_activation: str
    torch_activation: str


@dataclass(frozen=True)
class ResidualOp(Op):
    """activation(block(x) + shortcut(x)); `attrs` holds its activation's submodule (an act<n>, in Keras too), if any.
    Its block's and shortcut's ops are submodules of the model itself, named after it (compilers.naming.layer_names);
    the sum is Keras's Add layer of its name."""

    kind: ClassVar[str] = "residual"
    block: tuple[Op, ...]
    shortcut: tuple[Op, ...]  # a projection's Conv2DOp and BatchNormOp; () for identity
    variable: str  # the local variable holding the shortcut in forward / the functional Keras model
    keras_activation: str | None
    torch_activation: str | None

    @property
    def output_attr(self) -> str:
        """None: its row is the sum, a line of forward, no submodule's output (its activation follows it)."""
        return ""

    @property
    def runtime_layers(self) -> tuple[str, ...]:
        return tuple(name for op in (*self.block, *self.shortcut) for name in op.runtime_layers)

    def flat(self) -> tuple[Op, ...]:
        """Every op inside it, in forward order (block, shortcut), then itself."""
        return (*flat_ops((*self.block, *self.shortcut)), self)


def flat_ops(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """`ops` with each Residual's ops before it, in forward order: one per row of the LAYERS table."""
    return tuple(inner for op in ops for inner in (op.flat() if isinstance(op, ResidualOp) else (op,)))


OP_TYPES: tuple[type[Op], ...] = (DenseOp, Conv2DOp, MaxPoolOp, BatchNormOp, DropoutOp, FlattenOp, ActivationOp)
OP_TYPES += (AvgPoolOp, GlobalAvgPoolOp, GlobalMaxPoolOp, ZeroPaddingOp, UpSamplingOp, LayerNormOp)
OP_TYPES += (DepthwiseConv2DOp, SeparableConv2DOp, ResidualOp)


@dataclass(frozen=True)
class ResolvedModel:
    """A whole network, ready to print in both frameworks."""

    name: str
    class_name: str
    spec_file: str
    spec_sha256: str
    spec_json: str
    input_shape: tuple[int, int, int]  # height, width, channels
    ops: tuple[Op, ...]
    runtime_layers: tuple[str, ...]  # names imported from runtime.torch.layers
    init_lines: tuple[str, ...]  # PyTorch statements drawing the initial weights
    trainable: int
    non_trainable: int
    output: str  # "probabilities", "log_probabilities" or "logits"
    recipe: dict  # the training section, every default filled in; a spec without one trains with plain SGD
    layers: tuple[LayerRow, ...]
    weights: tuple[WeightRow, ...]

    @property
    def is_chain(self) -> bool:
        """No Residual: keras.Sequential holds it; else a functional keras.Model."""
        return not any(isinstance(op, ResidualOp) for op in self.ops)

    @property
    def flat_ops(self) -> tuple[Op, ...]:
        """Every op, a Residual's own after its block's and shortcut's (the PyTorch submodules' order)."""
        return flat_ops(self.ops)

    @property
    def uses_runtime_init(self) -> bool:
        """Whether an initialiser needs runtime.torch.init (Keras's truncated normal, 1-D fans)."""
        return any(line.startswith("torch_init.") for line in self.init_lines)
