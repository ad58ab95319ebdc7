"""Output shape and parameter count of every layer, inferred without any framework.

Shapes are channels-last: (height, width, channels) for feature maps, (features,) when flat.
"""

from dataclasses import dataclass
from math import ceil, prod

from dsl.layers import (
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    LayerNorm,
    MaxPool,
    Residual,
    SeparableConv2D,
    UpSampling,
    ZeroPadding,
)
from dsl.spec import Spec

Shape = tuple[int, ...]
# Layers that take (height, width, channels) feature maps only.
SPATIAL = (Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPool, AvgPool, GlobalAvgPool, GlobalMaxPool)
SPATIAL += (UpSampling, ZeroPadding, Residual)


@dataclass(frozen=True)
class LayerShape:
    """What one DSL layer produces and holds."""

    kind: str
    input_shape: Shape
    output_shape: Shape
    trainable: int  # a Residual's: its block's and shortcut's together
    non_trainable: int
    block: tuple["LayerShape", ...] = ()  # a Residual's layers
    shortcut: tuple["LayerShape", ...] = ()  # a projection shortcut's Conv2D and BatchNorm

    @property
    def values(self) -> int:
        """The values this layer outputs for one image, a Residual's layers' included."""
        return prod(self.output_shape) + sum(part.values for part in (*self.block, *self.shortcut))


class ShapeProblem(ValueError):
    """A layer that cannot take its input; `field` is the path inside the spec."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def spatial_output(size: int, window: int, stride: int, padding: str) -> int:
    """One spatial dimension after a convolution or pooling window."""
    if padding == "same":
        return ceil(size / stride)
    return (size - window) // stride + 1


def same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """TensorFlow's `same` padding of one dimension: (before, after), the extra one after."""
    total = max((spatial_output(size, window, stride, "same") - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def effective_window(window: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """The span of a dilated kernel: (k - 1) * d + 1 per dimension."""
    return tuple((k - 1) * d + 1 for k, d in zip(window, dilation))


def _windowed(field: str, shape: Shape, window: tuple[int, int], strides: tuple[int, int], padding: str) -> Shape:
    height, width = shape[0], shape[1]
    if padding == "valid" and (window[0] > height or window[1] > width):
        size = window[0] if window[0] == window[1] else list(window)
        raise ShapeProblem(field, f"{size} is larger than the {height}x{width} input")
    return tuple(spatial_output(n, k, s, padding) for n, k, s in zip((height, width), window, strides))


def _dilated(where: str, layer, shape: Shape) -> Shape:
    """The output height and width of a (possibly dilated) convolution, refusing the strides TensorFlow refuses."""
    if not isinstance(layer, Conv2D) and layer.strides[0] != layer.strides[1]:
        raise ShapeProblem(f"{where}.strides", "TensorFlow's depthwise convolution takes equal strides only")
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ShapeProblem(f"{where}.dilation_rate", "Keras does not take strides > 1 together with dilation_rate > 1")
    span = effective_window(layer.kernel_size, layer.dilation_rate)
    if span != layer.kernel_size and layer.padding == "valid" and (span[0] > shape[0] or span[1] > shape[1]):
        raise ShapeProblem(
            f"{where}.dilation_rate",
            f"the dilated kernel spans {list(span)}, more than the {shape[0]}x{shape[1]} input",
        )
    return _windowed(f"{where}.kernel_size", shape, span, layer.strides, layer.padding)


def _conv_shape(where: str, kind: str, layer, shape: Shape) -> LayerShape:
    hw, taps, channels = _dilated(where, layer, shape), layer.kernel_size[0] * layer.kernel_size[1], shape[2]
    if isinstance(layer, Conv2D):
        for count, name in ((channels, "input channels"), (layer.filters, "filters")):
            if count % layer.groups:
                raise ShapeProblem(f"{where}.groups", f"{layer.groups} groups do not divide the {count} {name}")
        weights, out = taps * channels // layer.groups * layer.filters, layer.filters
    elif isinstance(layer, DepthwiseConv2D):
        out = channels * layer.depth_multiplier
        weights = taps * out
    else:  # SeparableConv2D: the depthwise kernel, then the 1x1 pointwise one
        depth = channels * layer.depth_multiplier
        weights, out = taps * depth + depth * layer.filters, layer.filters
    return LayerShape(kind, shape, (*hw, out), weights + out * layer.use_bias, 0)


def _pooled(where: str, kind: str, layer, shape: Shape) -> LayerShape:
    strides = layer.strides or layer.pool_size
    hw = _windowed(f"{where}.pool_size", shape, layer.pool_size, strides, layer.padding)
    return LayerShape(kind, shape, (*hw, shape[2]), 0, 0)


def _resized(kind: str, layer, shape: Shape) -> LayerShape:
    if isinstance(layer, UpSampling):
        return LayerShape(kind, shape, (shape[0] * layer.size[0], shape[1] * layer.size[1], shape[2]), 0, 0)
    (top, bottom), (left, right) = layer.padding
    return LayerShape(kind, shape, (shape[0] + top + bottom, shape[1] + left + right, shape[2]), 0, 0)


def projection_strides(block_input: Shape, block_output: Shape) -> list[int] | None:
    """The strides of the 1x1 convolution taking the block's input size to its output size: the block's reduction,
    a whole factor per side; None where it is not one."""
    sizes = list(zip(block_input[:2], block_output[:2]))
    return [n // o for n, o in sizes] if all(0 < o <= n and n % o == 0 for n, o in sizes) else None


def projection(block_input: Shape, block_output: Shape) -> tuple[Conv2D, BatchNorm]:
    """A projection shortcut's layers: a 1x1 Conv2D without bias, strided by the block's reduction, to the block's
    channels, then a BatchNorm with the DSL's defaults."""
    strides = projection_strides(block_input, block_output)
    conv = Conv2D.model_validate({"filters": block_output[2], "kernel_size": 1, "strides": strides, "use_bias": False})
    return conv, BatchNorm()


def _shortcut_problem(layer: Residual, shape: Shape, out: Shape) -> str | None:
    """Why the shortcut cannot match the block's output, or None."""
    if len(out) != 3:
        return f"its block ends in the flat shape {out}, which no shortcut of a (height, width, channels) input matches"
    if layer.shortcut == "identity":
        if out == shape:
            return None
        hint = ": use shortcut: projection" if projection_strides(shape, out) is not None else ""
        return f"shortcut identity adds the {shape} input to the block's {out} output{hint}"
    if projection_strides(shape, out) is None:
        return (
            f"shortcut projection: the block takes {shape[0]}x{shape[1]} to {out[0]}x{out[1]}, not a reduction by a "
            "whole factor, which a strided 1x1 convolution cannot match"
        )
    return None


def _residual(where: str, layer: Residual, shape: Shape) -> LayerShape:
    block = _infer_chain(f"{where}.layers", layer.layer_list(), shape, in_block=True)
    out = block[-1].output_shape
    problem = _shortcut_problem(layer, shape, out)
    if problem:
        raise ShapeProblem(where, problem)
    shortcut = ()
    if layer.shortcut == "projection":
        conv, norm = projection(shape, out)
        shortcut = (_infer_layer(where, "Conv2D", conv, shape), _infer_layer(where, "BatchNorm", norm, out))
    parts = (*block, *shortcut)
    trainable, state = sum(part.trainable for part in parts), sum(part.non_trainable for part in parts)
    return LayerShape("Residual", shape, out, trainable, state, block, shortcut)


def _infer_layer(where: str, kind: str, layer, shape: Shape) -> LayerShape:
    if isinstance(layer, SPATIAL) and len(shape) != 3:
        raise ShapeProblem(where, f"needs (height, width, channels) feature maps, got the flat shape {shape}")
    if isinstance(layer, Residual):
        return _residual(where, layer, shape)
    if isinstance(layer, (Conv2D, DepthwiseConv2D, SeparableConv2D)):
        return _conv_shape(where, kind, layer, shape)
    if isinstance(layer, (MaxPool, AvgPool)):
        return _pooled(where, kind, layer, shape)
    if isinstance(layer, (GlobalAvgPool, GlobalMaxPool)):
        return LayerShape(kind, shape, (shape[2],), 0, 0)
    if isinstance(layer, (UpSampling, ZeroPadding)):
        return _resized(kind, layer, shape)
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise ShapeProblem(where, f"needs a flat input, got {shape}: add a Flatten layer before it")
        return LayerShape(kind, shape, (layer.units,), shape[0] * layer.units + layer.units * layer.use_bias, 0)
    if isinstance(layer, BatchNorm):
        return LayerShape(kind, shape, shape, 2 * shape[-1], 2 * shape[-1])
    if isinstance(layer, LayerNorm):
        return LayerShape(kind, shape, shape, (layer.center + layer.scale) * shape[-1], 0)
    if isinstance(layer, Flatten):
        size = 1
        for n in shape:
            size *= n
        return LayerShape(kind, shape, (size,), 0, 0)
    return LayerShape(kind, shape, shape, 0, 0)  # Dropout and Activation keep the shape


def _infer_chain(
    where: str, layers: list[tuple[str, object]], shape: Shape, in_block: bool = False
) -> list[LayerShape]:
    """The shapes of a layer list at `where` (the spec's, or a Residual's block) taking `shape`."""
    inferred = []
    for index, (kind, layer) in enumerate(layers):
        if in_block and isinstance(layer, Flatten):
            raise ShapeProblem(f"{where}[{index}].{kind}", "a Residual's block takes any layer but Flatten")
        info = _infer_layer(f"{where}[{index}].{kind}", kind, layer, shape)
        inferred.append(info)
        shape = info.output_shape
    return inferred


def infer_shapes(spec: Spec) -> list[LayerShape]:
    """Every layer's shapes and parameter counts, in order; raises ShapeProblem at the first misfit."""
    return _infer_chain("layers", spec.layer_list(), tuple(spec.input))


def flat_shapes(shapes: list[LayerShape]) -> list[LayerShape]:
    """Every layer's shapes, a Residual's block and shortcut before the Residual itself: the LAYERS table's rows."""
    return [inner for shape in shapes for inner in (*flat_shapes([*shape.block, *shape.shortcut]), shape)]


def output_shape(spec: Spec) -> Shape:
    """The model's output shape."""
    return infer_shapes(spec)[-1].output_shape
