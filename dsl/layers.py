"""One small frozen model per DSL layer; each field has one documented meaning (see README)."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, PositiveInt

from dsl.base import SPEC_CONFIG, as_tuple

Function = Literal["relu", "tanh", "sigmoid", "elu", "gelu", "softmax", "log_softmax"]
Activation = Literal[("none", *Function.__args__)]  # one Literal, so a bad value gets one message listing all
Initializer = Literal["glorot_uniform", "he_normal", "he_uniform", "zeros"]
Padding = Literal["valid", "same"]


def _as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


# An int or an [height, width] pair, always stored as a pair.
Pair = Annotated[PositiveInt | as_tuple(tuple[PositiveInt, PositiveInt]), AfterValidator(_as_pair)]


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
    """2-D convolution; `same` padding follows TensorFlow (extra padding at bottom/right)."""

    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    activation: Activation = "none"
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"


class MaxPool(_Layer):
    """2-D max pooling; strides default to the pool size, `same` pads with -inf like TensorFlow."""

    pool_size: Pair = (2, 2)
    strides: Pair | None = None
    padding: Padding = "valid"


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


LAYER_TYPES: dict[str, type[_Layer]] = {
    "Dense": Dense,
    "Conv2D": Conv2D,
    "MaxPool": MaxPool,
    "BatchNorm": BatchNorm,
    "Dropout": Dropout,
    "Flatten": Flatten,
    "Activation": ActivationLayer,
}
