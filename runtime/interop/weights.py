"""Copy weights between the PyTorch and Keras models generated from one spec, pairing layers by name.

Layouts (runtime.common.layouts): Dense kernels are transposed ((out, in) vs (in, out)), Conv2D kernels are OIHW
vs HWIO (a depthwise kernel then reshaped), and BatchNorm's weight/bias/running_mean/running_var are
gamma/beta/moving_mean/moving_variance; a SeparableConv2d's are in its depthwise and pointwise submodules. The weights
acting on a flattened feature map (the first Dense after a Flatten, and a BatchNorm between them) have
their feature rows reordered: Keras flattens (height, width, channel), `nn.Flatten` (channel, height, width).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.common.layouts import FeatureMap, to_keras_layout, to_torch_layout, torch_name

_BOOKKEEPING = ("num_batches_tracked",)


@dataclass(frozen=True)
class TensorPair:
    """One weight in both models: the Keras variable and the PyTorch parameter or buffer."""

    layer: str
    keras_name: str
    keras_variable: Any
    torch_tensor: Any
    flattened: FeatureMap | None = None  # the feature map whose flattened vector this weight acts on

    @property
    def label(self) -> str:
        """`layer.variable`, as Keras names it."""
        return f"{self.layer}.{self.keras_name}"


def _torch_tensors(module) -> dict[str, Any]:
    """A submodule's parameters and state buffers, by attribute path (`pointwise.weight` in a nested one)."""
    tensors = dict(module.named_parameters())
    tensors.update((n, b) for n, b in module.named_buffers() if n.split(".")[-1] not in _BOOKKEEPING and b is not None)
    return tensors


def _weight_layers(torch_model, keras_model) -> tuple[dict, dict]:
    torch_layers = {name: m for name, m in torch_model.named_children() if _torch_tensors(m)}
    keras_layers = {layer.name: layer for layer in keras_model.layers if layer.weights}
    if torch_layers.keys() != keras_layers.keys():
        raise ValueError(
            "the models do not have the same weight layers (are they from the same spec?): "
            f"only in PyTorch {sorted(torch_layers.keys() - keras_layers.keys())}, "
            f"only in Keras {sorted(keras_layers.keys() - torch_layers.keys())}"
        )
    return torch_layers, keras_layers


def flattened_maps(keras_model) -> dict[str, FeatureMap]:
    """Layer name -> the (height, width, channels) map whose flattened features the layer's weights act on.

    From a Flatten of a feature map up to and including the next Dense; the layers between (BatchNorm, Dropout,
    Activation) keep the flat order, so a BatchNorm there holds per-feature weights in that order too.
    """
    maps, current = {}, None
    for layer in keras_model.layers:
        if layer.__class__.__name__ == "Flatten":
            shape = tuple(layer.input.shape[1:])
            current = shape if len(shape) == 3 else None
        elif current is not None and layer.weights:
            maps[layer.name] = current
            if layer.__class__.__name__ == "Dense":
                current = None
    return maps


def _layer_pairs(name: str, module, layer, flattened: FeatureMap | None) -> list[TensorPair]:
    tensors = _torch_tensors(module)
    pairs = []
    for variable in layer.weights:
        keras_name = variable.name.split("/")[-1]
        attr = torch_name(module, keras_name)
        if attr not in tensors:
            raise ValueError(f"layer {name!r}: Keras weight {keras_name!r} has no PyTorch counterpart {attr!r}")
        tensor = tensors.pop(attr)
        expected = to_keras_layout(np.empty(tuple(tensor.shape), dtype=np.uint8), None, tuple(variable.shape)).shape
        if tuple(variable.shape) != expected:
            raise ValueError(
                f"layer {name!r}: PyTorch {attr} has shape {tuple(tensor.shape)} (Keras layout {expected}), "
                f"Keras {keras_name} has shape {tuple(variable.shape)}"
            )
        per_feature = keras_name != "bias"  # a Dense bias is per output; kernels and BatchNorm weights per input
        pairs.append(TensorPair(name, keras_name, variable, tensor, flattened if per_feature else None))
    if tensors:
        raise ValueError(f"layer {name!r}: PyTorch tensors {sorted(tensors)} have no Keras counterpart")
    return pairs


def tensor_pairs(torch_model, keras_model) -> list[TensorPair]:
    """Every weight of two same-spec models, paired; ValueError naming the layer on any misfit."""
    torch_layers, keras_layers = _weight_layers(torch_model, keras_model)
    maps = flattened_maps(keras_model)
    return [
        pair
        for name in keras_layers
        for pair in _layer_pairs(name, torch_layers[name], keras_layers[name], maps.get(name))
    ]


def torch_array(pair: TensorPair, tensor=None) -> np.ndarray:
    """The PyTorch side of a pair (or `tensor`, its gradient say) as an array in Keras's layout."""
    tensor = pair.torch_tensor if tensor is None else tensor
    return to_keras_layout(tensor.detach().cpu().numpy(), pair.flattened, tuple(pair.keras_variable.shape))


def torch_to_keras(torch_model, keras_model) -> None:
    """Copy every weight of `torch_model` into `keras_model` (built from the same spec)."""
    pairs = tensor_pairs(torch_model, keras_model)
    for pair in pairs:
        pair.keras_variable.assign(torch_array(pair).astype(pair.keras_variable.dtype))


def keras_to_torch(keras_model, torch_model) -> None:
    """Copy every weight of `keras_model` into `torch_model` (built from the same spec)."""
    import keras
    import torch

    pairs = tensor_pairs(torch_model, keras_model)
    with torch.no_grad():
        for pair in pairs:
            values = keras.ops.convert_to_numpy(pair.keras_variable)
            values = to_torch_layout(values, pair.flattened, tuple(pair.torch_tensor.shape))
            pair.torch_tensor.copy_(torch.from_numpy(values))
