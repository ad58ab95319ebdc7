"""Hand-written PyTorch models in the style of the source projects, and ones the DSL cannot say yet."""

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 with activations as functions in forward and a view."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class SmallCNN(nn.Module):
    """A CNN with padding=1, BatchNorm and a view(-1, 64*7*7), ending in log-probabilities."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.dropout(x)
        x = x.view(-1, 64 * 7 * 7)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        x = x.flatten(1)
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class CeilPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x):
        return self.pool(self.conv(x))


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten(2)
        self.rnn = nn.LSTM(28, 10)

    def forward(self, x):
        return self.rnn(self.flatten(x))


class StridedPadding(nn.Module):
    """padding=1 with stride 2 on 28 pixels pads (1, 1); TensorFlow's `same` would pad (0, 1)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Residual(nn.Module):
    """Two convolutions added: neither path is nothing or a projection, so it is no residual block of the DSL's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.other = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.other(x) + self.conv(x)


class BasicBlock(nn.Module):
    """A torchvision-style basic block: relu(body(x) + shortcut(x)), the shortcut nothing or a strided 1x1
    convolution and a BatchNorm (with Keras's eps and momentum, the DSL's projection's)."""

    def __init__(self, channels: int, filters: int, stride: int, shortcut_eps: float = 1e-3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, filters, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(filters),
            nn.ReLU(),
            nn.Conv2d(filters, filters, 3, padding=1, bias=False),
            nn.BatchNorm2d(filters),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or channels != filters:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, filters, 1, stride=stride, bias=False),
                nn.BatchNorm2d(filters, eps=shortcut_eps, momentum=0.01),
            )

    def forward(self, x):
        out = self.body(x) + self.shortcut(x)
        return F.relu(out)


class SmallResNet(nn.Module):
    """A stem, an identity basic block and a strided one with a projection, global pooling, a Linear."""

    def __init__(self, shortcut_eps: float = 1e-3):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block1 = BasicBlock(8, 8, 1)
        self.block2 = BasicBlock(8, 16, 2, shortcut_eps)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.block2(self.block1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class TorchDefaultProjection(SmallResNet):
    """Its projection's BatchNorm has PyTorch's eps 1e-5: not the DSL's projection."""

    def __init__(self):
        super().__init__(shortcut_eps=1e-5)


class AveragePool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, padding=1)

    def forward(self, x):
        return self.pool(x)


model = LeNet5()  # a module instance, importable as torch_models.py:model


class Vocabulary(nn.Module):
    """The vocabulary layers as a hand-written model spells them: padding=1 with stride 2 (not TensorFlow's `same`),
    a dilated depthwise convolution by its groups, an explicit pad, interpolate, an adaptive pool and a LayerNorm."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=8)
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.pool = nn.AvgPool2d(3, stride=2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.global_pool = nn.AdaptiveMaxPool2d(1)
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.relu(self.depthwise(x))
        x = self.up(self.pool(self.pad(x)))
        x = F.interpolate(x, scale_factor=(1, 2))
        x = torch.flatten(self.global_pool(x), 1)
        return self.fc(self.norm(x))


class AlignCorners(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, x):
        return self.up(x)


class MapLayerNorm(nn.Module):
    """nn.LayerNorm over (C, H, W) of a map: not the DSL's per-position channel normalisation."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.norm = nn.LayerNorm([4, 26, 26])

    def forward(self, x):
        return self.norm(self.conv(x))


class KeptMap(nn.Module):
    """A global pool whose (1, 1) map a convolution reads: the DSL's global pools give a vector."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(1, 4, 1)

    def forward(self, x):
        return self.conv(self.pool(x))


class CeilAvgPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, ceil_mode=True)

    def forward(self, x):
        return self.pool(x)


class Scaled(nn.Module):
    """A product with a constant: no DSL layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * 2
