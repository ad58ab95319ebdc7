"""The generated PyTorch LeNet-5 is the one a person writes: a hand-written NCHW model's state_dict loads into it.

The Keras model flattens (height, width, channel) where nn.Flatten flattens (channel, height, width); the weight
transfer reorders fc1's rows between the two. LeNet-5 flattens a 5x5x16 map, so that reorder is not the identity.
"""

import importlib

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# isort: split
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from runtime.common.data import DataError, load_split_arrays  # noqa: E402
from runtime.common.layouts import to_channels_first, to_channels_last  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402

lenet5 = importlib.import_module("generated.lenet5")
TOL = 1e-5
TRAIN_IMAGES = 512


class HandLeNet5(nn.Module):
    """LeNet-5 as written by hand for PyTorch, with the generated model's attribute names."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten1 = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = self.flatten1(x)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.softmax(self.fc3(x), dim=1)


@pytest.fixture(scope="module")
def fashion_mnist():
    """The official splits; the hand model trains on a few hundred images, as a person's quick check would."""
    try:
        return load_split_arrays(download=False)
    except DataError as error:
        pytest.skip(f"Fashion-MNIST not found: {str(error).splitlines()[0]}")


@pytest.fixture(scope="module")
def hand(fashion_mnist):
    """A hand model trained briefly, so that its outputs are confident and a wrong transfer shows."""
    torch.manual_seed(3)
    model = HandLeNet5()
    images = torch.from_numpy(to_channels_first(fashion_mnist.train_images[:TRAIN_IMAGES]))
    labels = torch.from_numpy(fashion_mnist.train_labels[:TRAIN_IMAGES])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(8):
        for batch in torch.randperm(TRAIN_IMAGES).split(64):
            optimizer.zero_grad()
            F.nll_loss(torch.log(model(images[batch])), labels[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        assert (model(images).argmax(1) == labels).float().mean() > 0.7  # it learned
    return model.eval()


@pytest.fixture(scope="module")
def images(fashion_mnist) -> torch.Tensor:
    """Test images, NCHW, as a hand-written PyTorch pipeline feeds them."""
    return torch.from_numpy(to_channels_first(fashion_mnist.test_images[:64]))


def generated_from(hand: nn.Module) -> nn.Module:
    model = lenet5.build_torch_model()
    model.load_state_dict(hand.state_dict(), strict=True)
    return model.eval()


def keras_forward(keras_model, images: torch.Tensor) -> np.ndarray:
    return np.asarray(keras_model(to_channels_last(images.numpy()), training=False))


@torch.no_grad()
def test_hand_written_state_dict_loads_strictly_and_gives_the_same_outputs(hand, images):
    generated = lenet5.build_torch_model().eval()
    assert (generated(images) - hand(images)).abs().max() > 1e-3  # different weights before the load
    generated.load_state_dict(hand.state_dict(), strict=True)
    torch.testing.assert_close(generated(images), hand(images))


@torch.no_grad()
def test_hand_written_weights_through_the_transfer_give_the_same_keras_outputs(hand, images):
    keras_model = lenet5.build_keras_model()
    weights.torch_to_keras(generated_from(hand), keras_model)
    np.testing.assert_allclose(keras_forward(keras_model, images), hand(images).numpy(), rtol=0, atol=TOL)


@torch.no_grad()
def test_the_transfer_without_the_flatten_reorder_gives_other_outputs(hand, images, monkeypatch):
    monkeypatch.setattr(weights, "flattened_maps", lambda keras_model: {})
    keras_model = lenet5.build_keras_model()
    weights.torch_to_keras(generated_from(hand), keras_model)
    assert np.abs(keras_forward(keras_model, images) - hand(images).numpy()).max() > 1000 * TOL


@torch.no_grad()
def test_keras_weights_come_back_into_the_hand_written_model(hand, images):
    keras_model = lenet5.build_keras_model()
    weights.torch_to_keras(generated_from(hand), keras_model)
    generated = lenet5.build_torch_model()
    weights.keras_to_torch(keras_model, generated)
    back = HandLeNet5().eval()
    back.load_state_dict(generated.state_dict(), strict=True)
    for name, tensor in hand.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(back(images), hand(images), rtol=0, atol=0)


def per_layer_figures() -> dict[str, float]:
    torch_model, keras_model = parity.build_pair(lenet5)
    images = parity.random_data(lenet5.INPUT_SHAPE, count=8).test_images
    pairs = [(row.name, row.output_attr) for row in lenet5.LAYERS]
    return parity.forward_diffs(torch_model, keras_model, images, pairs)[1]


def test_per_layer_parity_compares_the_flattened_features_in_one_order():
    figures = per_layer_figures()
    assert "flatten1" in figures and max(figures.values()) <= parity.FORWARD_TOL, figures


def test_per_layer_parity_without_the_reorder_sees_the_flatten_differ(monkeypatch):
    monkeypatch.setattr(parity, "flat_order_outputs", lambda keras_model: {})
    figures = per_layer_figures()
    assert figures["flatten1"] > 1e-2 and figures["fc1"] <= parity.FORWARD_TOL
