"""Keras's weight initialisers for PyTorch tensors where nn.init does not match, and a seed's initial weights.

Fans follow Keras: a 1-D tensor has fan_in = fan_out = its length; a Linear weight (out, in) and a
Conv2d weight (out, in, h, w) have the same fans as their Keras kernels (in, out) and (h, w, in, out). A depthwise
kernel (in * multiplier, 1, h, w) takes the fans of its Keras kernel (h, w, in, multiplier), given the multiplier.
"""

import math
from operator import attrgetter

import torch

from runtime.common.frameworks import guard_triton
from runtime.common.initial_weights import TRUNCATED_NORMAL_STD, initial_weights
from runtime.common.layouts import to_torch_layout, torch_name

guard_triton()  # before anything loads triton lazily (see runtime/common/frameworks.py)


def fans(tensor: torch.Tensor, depth_multiplier: int | None = None) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them for the matching kernel (a depthwise one given its multiplier)."""
    if tensor.dim() == 1:
        return tensor.shape[0], tensor.shape[0]
    receptive_field = math.prod(tensor.shape[2:])
    if depth_multiplier is not None:
        # A depthwise kernel is (in * multiplier, 1, kh, kw); Keras's is (kh, kw, in, multiplier).
        in_channels = tensor.shape[0] // depth_multiplier
        return in_channels * receptive_field, depth_multiplier * receptive_field
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


@torch.no_grad()
def glorot_uniform_(tensor: torch.Tensor, depth_multiplier: int | None = None) -> torch.Tensor:
    limit = math.sqrt(6.0 / sum(fans(tensor, depth_multiplier)))
    return tensor.uniform_(-limit, limit)


@torch.no_grad()
def he_uniform_(tensor: torch.Tensor, depth_multiplier: int | None = None) -> torch.Tensor:
    limit = math.sqrt(6.0 / fans(tensor, depth_multiplier)[0])
    return tensor.uniform_(-limit, limit)


@torch.no_grad()
def he_normal_(tensor: torch.Tensor, depth_multiplier: int | None = None) -> torch.Tensor:
    """Keras's he_normal: a normal truncated at two standard deviations, variance 2 / fan_in."""
    std = math.sqrt(2.0 / fans(tensor, depth_multiplier)[0]) / TRUNCATED_NORMAL_STD
    return torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


@torch.no_grad()
def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.zero_()


@torch.no_grad()
def load_initial_weights(model: torch.nn.Module, rows, seed: int) -> None:
    """Give `model` the weights runtime.common.initial_weights draws for `seed` (the Keras loop loads the same).

    `rows` is the generated package's WEIGHTS table; each array goes to PyTorch's layout on the way in.
    """
    for row, values in initial_weights(rows, seed):
        module = getattr(model, row.layer)
        tensor = attrgetter(torch_name(module, row.variable))(module)
        tensor.copy_(torch.from_numpy(to_torch_layout(values, row.flattened, tuple(tensor.shape))))
