"""PyTorch layers that follow the DSL's meaning where the built-in ones differ from Keras."""

import torch
import torch.nn.functional as F
from torch import nn

from runtime.frameworks import guard_triton

guard_triton()  # before anything loads triton lazily (see runtime/frameworks.py)


class _BiasedVarBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose running variance tracks the biased batch variance, as Keras's does.

    nn.BatchNorm updates it with the unbiased (n - 1) variance; normalisation itself is the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        with torch.no_grad():  # the statistics only feed the running averages: nothing to differentiate
            var, mean = torch.var_mean(x, dim=[0, *range(2, x.dim())], correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)


class BiasedVarBatchNorm1d(_BiasedVarBatchNorm, nn.BatchNorm1d):
    """nn.BatchNorm1d with Keras's running-variance update."""


class BiasedVarBatchNorm2d(_BiasedVarBatchNorm, nn.BatchNorm2d):
    """nn.BatchNorm2d with Keras's running-variance update."""
