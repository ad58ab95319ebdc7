"""The one place that converts arrays between Keras's (the DSL's) layout and PyTorch's.

Images: NHWC against NCHW. Weights: Dense kernels (in, out) against (out, in), Conv2D kernels HWIO against OIHW.
A depthwise kernel: PyTorch's (in * multiplier, 1, h, w) is Keras's (h, w, in, multiplier), output channel
c * multiplier + m in both, so after the transpose it is a reshape.
Flattened features: Keras flattens feature maps in (height, width, channel) order, `nn.Flatten` in (channel, height,
width) order, so the weights that act on a flattened vector (the first Dense after a Flatten, and a BatchNorm between
them) hold their per-feature rows in a different order.
"""

from __future__ import annotations

import numpy as np

FeatureMap = tuple[int, int, int]  # height, width, channels of the map a Flatten flattened

# Keras variable name -> the PyTorch tensor attribute holding the same values.
TORCH_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
# PyTorch modules holding a Keras layer's weights in submodules: class name -> Keras variable -> attribute path.
NESTED_TORCH_NAMES = {
    "SeparableConv2d": {
        "depthwise_kernel": "depthwise.weight",
        "pointwise_kernel": "pointwise.weight",
        "bias": "pointwise.bias",
    },
}


def torch_name(module, variable: str) -> str:
    """The attribute path, in PyTorch `module`, of the tensor holding Keras's `variable`; None if it has none."""
    return NESTED_TORCH_NAMES.get(type(module).__name__, TORCH_NAMES).get(variable)


def _is_depthwise(torch_shape: tuple[int, ...], keras_shape: tuple[int, ...] | None) -> bool:
    """Whether a 4-D kernel is depthwise: PyTorch (in * multiplier, 1, h, w), Keras (h, w, in, multiplier)."""
    if keras_shape is None or len(keras_shape) != 4:
        return False
    return torch_shape[1] == 1 and keras_shape[2] != 1 and keras_shape[2] * keras_shape[3] == torch_shape[0]


def to_channels_first(images: np.ndarray) -> np.ndarray:
    """NHWC images (or feature maps) as contiguous NCHW; other ranks unchanged."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)) if images.ndim == 4 else images


def to_channels_last(images: np.ndarray) -> np.ndarray:
    """NCHW images (or feature maps) as NHWC; other ranks unchanged."""
    return images.transpose(0, 2, 3, 1) if images.ndim == 4 else images


def flat_order_torch_to_keras(feature_map: FeatureMap) -> np.ndarray:
    """index[k] = the position in PyTorch's flat vector of Keras's flat feature k."""
    height, width, channels = feature_map
    return np.arange(height * width * channels).reshape(channels, height, width).transpose(1, 2, 0).ravel()


def flat_to_keras_order(features: np.ndarray, feature_map: FeatureMap | None) -> np.ndarray:
    """Features (N, C*H*W) flattened as nn.Flatten does, in Keras's (N, H*W*C) order; unchanged for None."""
    return features if feature_map is None else features[:, flat_order_torch_to_keras(feature_map)]


def to_keras_layout(
    array: np.ndarray, flattened: FeatureMap | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """A PyTorch weight array in Keras's layout: (out, in) -> (in, out), OIHW -> HWIO.

    `flattened`: the feature map whose flattened vector this weight acts on, if any; its input rows (or, for a
    1-D BatchNorm weight, its entries) are reordered from PyTorch's flat order into Keras's.
    `shape`: Keras's shape of the variable, which tells a depthwise kernel (reshaped to it after the transpose).
    """
    if array.ndim == 4:
        hwio = array.transpose(2, 3, 1, 0)
        return hwio.reshape(shape) if _is_depthwise(array.shape, shape) else hwio
    keras = array.T if array.ndim == 2 else array
    return keras if flattened is None else keras[flat_order_torch_to_keras(flattened)]


def to_torch_layout(
    array: np.ndarray, flattened: FeatureMap | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """A Keras weight array in PyTorch's layout: (in, out) -> (out, in), HWIO -> OIHW (the inverse of the above).

    `shape`: PyTorch's shape of the tensor, which tells a depthwise kernel.
    """
    if array.ndim == 4:
        if shape is not None and _is_depthwise(shape, array.shape):
            array = array.reshape(shape[2], shape[3], shape[1], shape[0])
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if flattened is not None:
        array = array[np.argsort(flat_order_torch_to_keras(flattened))]
    return np.ascontiguousarray(array.T if array.ndim == 2 else array)
