"""runtime.torch_layers: BatchNorm whose running variance follows Keras (the biased batch variance)."""

import pytest

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402

from runtime.torch.layers import BiasedVarBatchNorm1d, BiasedVarBatchNorm2d  # noqa: E402


@pytest.mark.parametrize(("layer", "shape"), [(BiasedVarBatchNorm1d, (32, 6)), (BiasedVarBatchNorm2d, (8, 3, 5, 5))])
def test_running_statistics_move_toward_the_biased_batch_statistics(layer, shape) -> None:
    torch.manual_seed(0)
    bn = layer(shape[1], eps=1e-3, momentum=0.25).train()
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    x[:, 0] = 0.5  # a channel with no variance
    out = bn.double()(x)
    dims = [0, *range(2, x.dim())]
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    torch.testing.assert_close(bn.running_mean, 0.75 * torch.zeros_like(mean) + 0.25 * mean)
    torch.testing.assert_close(bn.running_var, 0.75 * torch.ones_like(var) + 0.25 * var)
    expected = torch.nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=1e-3)
    torch.testing.assert_close(out, expected)
    assert bn.num_batches_tracked.item() == 1


def test_channels_last_training_layout_keeps_the_values_and_the_saved_weights() -> None:
    from generated.lenet5 import build_torch_model
    from runtime.torch.training import _channels_last

    torch.manual_seed(0)
    plain = build_torch_model().eval()
    fast = build_torch_model()
    fast.load_state_dict(plain.state_dict())
    fast = _channels_last(fast).eval()
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(16, 1, 28, 28)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)
    reloaded = build_torch_model().eval()
    reloaded.load_state_dict(fast.state_dict())  # model.pt from a channels-last run loads into a plain model
    torch.testing.assert_close(reloaded(x), plain(x))
