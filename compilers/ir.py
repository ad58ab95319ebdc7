"""The resolved model: every value the templates print, decided in Python, immutable.

Where the frameworks spell one meaning differently the IR holds both spellings
(`torch_*`, `keras_*`); templates only print them.
"""

from dataclasses import dataclass
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


@dataclass(frozen=True)
class MaxPoolOp(Op):
    kind: ClassVar[str] = "maxpool"
    pool_size: tuple[int, int]
    strides: tuple[int, int]
    keras_padding: str
    torch_padding: tuple[int, int]
    torch_pad: Pads | None


@dataclass(frozen=True)
class BatchNormOp(Op):
    kind: ClassVar[str] = "batchnorm"
    features: int
    torch_class: str
    keras_momentum: float
    torch_momentum: float
    epsilon: float


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


OP_TYPES: tuple[type[Op], ...] = (DenseOp, Conv2DOp, MaxPoolOp, BatchNormOp, DropoutOp, FlattenOp, ActivationOp)


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
    def uses_runtime_init(self) -> bool:
        """Whether an initialiser needs runtime.torch.init (Keras's truncated normal, 1-D fans)."""
        return any(line.startswith("torch_init.") for line in self.init_lines)
