"""Output shape and parameter count of every layer, inferred without any framework.

Shapes are channels-last: (height, width, channels) for feature maps, (features,) when flat.
"""

from dataclasses import dataclass
from math import ceil

from dsl.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool
from dsl.spec import Spec

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerShape:
    """What one DSL layer produces and holds."""

    kind: str
    input_shape: Shape
    output_shape: Shape
    trainable: int
    non_trainable: int


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


def _windowed(field: str, shape: Shape, window: tuple[int, int], strides: tuple[int, int], padding: str) -> Shape:
    height, width = shape[0], shape[1]
    if padding == "valid" and (window[0] > height or window[1] > width):
        size = window[0] if window[0] == window[1] else list(window)
        raise ShapeProblem(field, f"{size} is larger than the {height}x{width} input")
    return tuple(spatial_output(n, k, s, padding) for n, k, s in zip((height, width), window, strides))


def _infer_layer(index: int, kind: str, layer, shape: Shape) -> LayerShape:
    where = f"layers[{index}].{kind}"
    if isinstance(layer, (Conv2D, MaxPool)) and len(shape) != 3:
        raise ShapeProblem(where, f"needs (height, width, channels) feature maps, got the flat shape {shape}")
    if isinstance(layer, Conv2D):
        hw = _windowed(f"{where}.kernel_size", shape, layer.kernel_size, layer.strides, layer.padding)
        weights = layer.kernel_size[0] * layer.kernel_size[1] * shape[2] * layer.filters
        return LayerShape(kind, shape, (*hw, layer.filters), weights + layer.filters * layer.use_bias, 0)
    if isinstance(layer, MaxPool):
        strides = layer.strides or layer.pool_size
        hw = _windowed(f"{where}.pool_size", shape, layer.pool_size, strides, layer.padding)
        return LayerShape(kind, shape, (*hw, shape[2]), 0, 0)
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise ShapeProblem(where, f"needs a flat input, got {shape}: add a Flatten layer before it")
        return LayerShape(kind, shape, (layer.units,), shape[0] * layer.units + layer.units * layer.use_bias, 0)
    if isinstance(layer, BatchNorm):
        return LayerShape(kind, shape, shape, 2 * shape[-1], 2 * shape[-1])
    if isinstance(layer, Flatten):
        size = 1
        for n in shape:
            size *= n
        return LayerShape(kind, shape, (size,), 0, 0)
    return LayerShape(kind, shape, shape, 0, 0)  # Dropout and Activation keep the shape


def infer_shapes(spec: Spec) -> list[LayerShape]:
    """Every layer's shapes and parameter counts, in order; raises ShapeProblem at the first misfit."""
    shape: Shape = tuple(spec.input)
    inferred = []
    for index, (kind, layer) in enumerate(spec.layer_list()):
        info = _infer_layer(index, kind, layer, shape)
        inferred.append(info)
        shape = info.output_shape
    return inferred


def output_shape(spec: Spec) -> Shape:
    """The model's output shape."""
    return infer_shapes(spec)[-1].output_shape
