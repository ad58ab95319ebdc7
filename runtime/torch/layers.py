"""PyTorch layers that follow the DSL's meaning where the built-in ones differ from Keras."""

import torch
from torch import nn

from runtime.common.frameworks import guard_triton

guard_triton()  # before anything loads triton lazily (see runtime/common/frameworks.py)


class _BiasedVarBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose running variance tracks the biased batch variance, as Keras's does.

    nn.BatchNorm updates it with the unbiased (n - 1) variance; normalisation itself is the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        # One pass normalises and returns the batch mean and 1 / sqrt(biased var + eps); a separate var_mean was
        # slower than the whole batch norm on CPU (measured 115 us against 25 us at 32 x 300).
        out, mean, invstd = torch.native_batch_norm(x, self.weight, self.bias, None, None, True, 0.0, self.eps)
        # The statistics only feed the running averages: nothing to differentiate.
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            var = invstd.to(self.running_var.dtype).pow(-2).sub_(self.eps)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        return out


class BiasedVarBatchNorm1d(_BiasedVarBatchNorm, nn.BatchNorm1d):
    """nn.BatchNorm1d with Keras's running-variance update."""


class BiasedVarBatchNorm2d(_BiasedVarBatchNorm, nn.BatchNorm2d):
    """nn.BatchNorm2d with Keras's running-variance update."""


class SamePadAvgPool2d(nn.Module):
    """Average pooling after an asymmetric `same` padding, the padded cells left out of each mean (TensorFlow's rule).

    nn.AvgPool2d(count_include_pad=False) leaves out only the symmetric padding it adds itself; a pad layer before it
    would make the padded zeros count. Here each window's sum is divided by the number of real cells it covers.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.pad = kernel_size, stride, pad  # pad: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sums = nn.functional.avg_pool2d(
            nn.functional.pad(x, self.pad), self.kernel_size, self.stride, divisor_override=1
        )
        ones = torch.ones_like(x[:1, :1])
        cells = nn.functional.avg_pool2d(
            nn.functional.pad(ones, self.pad), self.kernel_size, self.stride, divisor_override=1
        )
        return sums / cells

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}"


class GlobalMaxPool2d(nn.Module):
    """(N, C, H, W) to (N, C): each channel's maximum over the positions.

    Its gradient is shared equally among tied maxima, as TensorFlow's, jax's and Keras-on-PyTorch's reductions share
    it; nn.AdaptiveMaxPool2d(1) gives all of it to one of them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


class ChannelLayerNorm(nn.Module):
    """Keras's LayerNormalization(axis=-1): each position's channel vector (dim 1) normalised, gamma and beta per
    channel, each optional on its own (nn.LayerNorm normalises the trailing axes and has no beta without gamma)."""

    def __init__(self, features: int, eps: float, center: bool = True, scale: bool = True) -> None:
        super().__init__()
        self.features, self.eps = features, eps
        self.weight = nn.Parameter(torch.ones(features)) if scale else None
        self.bias = nn.Parameter(torch.zeros(features)) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.promote_types(dtype, torch.float32))  # in at least float32 under bf16 or fp16, as Keras does
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)  # per channel, broadcast over the positions
        if self.weight is not None:
            x = x * self.weight.to(x.dtype).view(shape)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).view(shape)
        return x.to(dtype)

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}, center={self.bias is not None}, scale={self.weight is not None}"


class SeparableConv2d(nn.Sequential):
    """Keras's SeparableConv2D: a depthwise convolution without bias, then a 1x1 convolution holding the one bias."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        depth_multiplier: int,
        bias: bool,
    ) -> None:
        super().__init__()
        depth = in_channels * depth_multiplier
        self.depthwise = nn.Conv2d(
            in_channels,
            depth,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=False,
        )
        self.pointwise = nn.Conv2d(depth, out_channels, kernel_size=1, bias=bias)
