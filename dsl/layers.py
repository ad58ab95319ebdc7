"""One small frozen model per DSL layer; each field has one documented meaning (see README)."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, NonNegativeInt, PositiveInt

from dsl.base import SPEC_CONFIG, as_tuple

Function = Literal["relu", "tanh", "sigmoid", "elu", "gelu", "softmax", "log_softmax"]
Activation = Literal[("none", *Function.__args__)]  # one Literal, so a bad value gets one message listing all
Initializer = Literal["glorot_uniform", "he_normal", "he_uniform", "zeros"]
Padding = Literal["valid", "same"]


def _as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


# An int or an [height, width] pair, always stored as a pair.
Pair = Annotated[PositiveInt | as_tuple(tuple[PositiveInt, PositiveInt]), AfterValidator(_as_pair)]

_Sides = as_tuple(tuple[NonNegativeInt, NonNegativeInt])


def _as_sides(value) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(value, int):
        return (value, value), (value, value)
    if isinstance(value[0], int):
        return (value[0], value[0]), (value[1], value[1])
    return tuple(value[0]), tuple(value[1])


# An int, an [height, width] pair or [[top, bottom], [left, right]], always stored as the last.
Sides = Annotated[NonNegativeInt | _Sides | as_tuple(tuple[_Sides, _Sides]), AfterValidator(_as_sides)]


class _Layer(BaseModel):
    model_config = SPEC_CONFIG


class Dense(_Layer):
    """Fully connected layer on a flat input: y = activation(x @ W + b)."""

    units: PositiveInt
    activation: Activation = "none"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"


class Conv2D(_Layer):
    """2-D convolution; `same` padding follows TensorFlow (extra padding at bottom/right).

    `dilation_rate` spaces the kernel's taps; `groups` splits input channels and filters into that many independent
    convolutions (it divides both).
    """

    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    dilation_rate: Pair = (1, 1)
    groups: PositiveInt = 1
    activation: Activation = "none"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"


class MaxPool(_Layer):
    """2-D max pooling; strides default to the pool size, `same` pads with -inf like TensorFlow."""

    pool_size: Pair = (2, 2)
    strides: Pair | None = None
    padding: Padding = "valid"


class DepthwiseConv2D(_Layer):
    """Each input channel convolved with its own `depth_multiplier` kernels; output channel c * multiplier + m."""

    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    depth_multiplier: PositiveInt = 1
    dilation_rate: Pair = (1, 1)
    activation: Activation = "none"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"


class SeparableConv2D(_Layer):
    """A depthwise convolution without bias, then a 1x1 convolution to `filters` with the one bias (Keras's)."""

    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    depth_multiplier: PositiveInt = 1
    dilation_rate: Pair = (1, 1)
    activation: Activation = "none"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"


class AvgPool(_Layer):
    """2-D average pooling; strides default to the pool size, `same` leaves padded cells out of each mean (TF)."""

    pool_size: Pair = (2, 2)
    strides: Pair | None = None
    padding: Padding = "valid"


class GlobalAvgPool(_Layer):
    """The mean of each channel over height and width: (height, width, channels) to (channels)."""


class GlobalMaxPool(_Layer):
    """The maximum of each channel over height and width: (height, width, channels) to (channels)."""


class UpSampling(_Layer):
    """Keras's UpSampling2D: rows and columns repeated `size` times, or bilinear with half-pixel centres."""

    size: Pair = (2, 2)
    interpolation: Literal["nearest", "bilinear"] = "nearest"


class ZeroPadding(_Layer):
    """Zeros around each feature map: an int, [height, width] or [[top, bottom], [left, right]]."""

    padding: Sides = ((1, 1), (1, 1))


class LayerNorm(_Layer):
    """Normalise each position's channel vector (Keras's axis=-1): gamma and beta per channel."""

    epsilon: float = Field(default=1e-3, gt=0)
    center: bool = True
    scale: bool = True


class BatchNorm(_Layer):
    """Batch normalisation; moving = momentum * moving + (1 - momentum) * batch (Keras convention)."""

    momentum: float = Field(default=0.99, gt=0, lt=1)
    epsilon: float = Field(default=1e-3, gt=0)


class Dropout(_Layer):
    """Inverted dropout: zero each unit with probability `rate` while training."""

    rate: float = Field(ge=0, lt=1)


class Flatten(_Layer):
    """Flatten feature maps in channels-last (height, width, channel) order."""


class ActivationLayer(_Layer):
    """An activation function on its own; softmax and log_softmax act on the channel axis."""

    name: Function


class Residual(_Layer):
    """activation(block(x) + shortcut(x)): `layers` is the block, `identity` adds x itself, `projection` a 1x1 Conv2D
    without bias (strides: the block's spatial reduction, filters: its output channels) then a BatchNorm (defaults)."""

    layers: list["LayerEntry"] = Field(min_length=1)  # noqa: F821 -- dsl.spec defines LayerEntry, which holds this
    shortcut: Literal["identity", "projection"] = "identity"
    activation: Activation = "none"

    def layer_list(self) -> list[tuple[str, BaseModel]]:
        """Each layer of the block as (kind, arguments)."""
        return [next(iter(entry)) for entry in self.layers]


LAYER_TYPES: dict[str, type[_Layer]] = {
    "Dense": Dense,
    "Conv2D": Conv2D,
    "MaxPool": MaxPool,
    "BatchNorm": BatchNorm,
    "Dropout": Dropout,
    "Flatten": Flatten,
    "Activation": ActivationLayer,
    "AvgPool": AvgPool,
    "GlobalAvgPool": GlobalAvgPool,
    "GlobalMaxPool": GlobalMaxPool,
    "ZeroPadding": ZeroPadding,
    "UpSampling": UpSampling,
    "LayerNorm": LayerNorm,
    "DepthwiseConv2D": DepthwiseConv2D,
    "SeparableConv2D": SeparableConv2D,
    "Residual": Residual,
}
