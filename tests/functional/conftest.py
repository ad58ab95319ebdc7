"""The functional tier: generated models run in PyTorch and Keras. PyTorch loads first (runtime.common.frameworks)."""

from runtime.common.frameworks import guard_triton

guard_triton()

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def seeded_torch():
    """Initial weights must not depend on which tests an xdist worker happened to run first."""
    import torch

    torch.manual_seed(0)
