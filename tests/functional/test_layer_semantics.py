"""The pooling variants, padding, upsampling, LayerNorm, the grouped, dilated, depthwise and separable convolutions
and residual blocks: both frameworks' generated layers against a numpy computation of the DSL's meaning, the bugs of
hand-ports and converters caught by it, and cross-framework parity (forward, gradients, a float64 trajectory)."""

import math
from pathlib import Path

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from torch import nn  # noqa: E402

from fmnist_dsl.strategies import build_architecture  # noqa: E402
from runtime.common.layouts import to_channels_first, to_channels_last  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402
from runtime.keras import backends  # noqa: E402
from tests.recipes import TF_FLOAT32_INSIDE_TOL, full_optimizer  # noqa: E402

ORACLE_TOL = 1e-5  # float32 models against the float64 oracle, values of order 1
INPUT = (9, 8, 4)


# ---- the oracle: each construct's meaning, in numpy, channels-last, float64 ----


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
    """TensorFlow's `same`: output ceil(size / stride), the odd padded cell after."""
    total = max((math.ceil(size / stride) - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def _padded(x: np.ndarray, window, strides, padding: str, value: float = 0.0) -> np.ndarray:
    if padding == "valid":
        return x
    pads = [_same_pads(n, k, s) for n, k, s in zip(x.shape[1:3], window, strides)]
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _windows(x: np.ndarray, window, strides, dilation=(1, 1)) -> np.ndarray:
    """(N, H, W, C) -> (N, out_h, out_w, kh, kw, C): every window's cells, dilated taps included."""
    spans = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    out = [(n - span) // s + 1 for n, span, s in zip(x.shape[1:3], spans, strides)]
    cells = np.empty((x.shape[0], *out, *window, x.shape[3]))
    for i in range(window[0]):
        for j in range(window[1]):
            rows = slice(i * dilation[0], i * dilation[0] + (out[0] - 1) * strides[0] + 1, strides[0])
            cols = slice(j * dilation[1], j * dilation[1] + (out[1] - 1) * strides[1] + 1, strides[1])
            cells[:, :, :, i, j, :] = x[:, rows, cols, :]
    return cells


def avg_pool(x, window, strides, padding):
    """Each window's mean over the real cells it covers: padded cells are left out (TensorFlow's rule)."""
    sums = _windows(_padded(x, window, strides, padding), window, strides).sum(axis=(3, 4))
    counts = _windows(_padded(np.ones_like(x), window, strides, padding), window, strides).sum(axis=(3, 4))
    return sums / counts


def conv(x, kernel, bias, strides, padding, dilation=(1, 1), groups=1):
    """Keras's Conv2D: kernel (kh, kw, in / groups, filters), group g's filters reading group g's channels."""
    spans = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:2], dilation)]
    cells = _windows(_padded(x, spans, strides, padding), kernel.shape[:2], strides, dilation)
    per_group, filters = kernel.shape[2], kernel.shape[3] // groups
    out = np.concatenate(
        [
            np.einsum(
                "nhwijc,ijcf->nhwf",
                cells[..., g * per_group : (g + 1) * per_group],
                kernel[..., g * filters : (g + 1) * filters],
            )
            for g in range(groups)
        ],
        axis=-1,
    )
    return out if bias is None else out + bias


def depthwise(x, kernel, bias, strides, padding, dilation=(1, 1)):
    """Keras's DepthwiseConv2D: kernel (kh, kw, in, multiplier), output channel c * multiplier + m."""
    spans = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:2], dilation)]
    cells = _windows(_padded(x, spans, strides, padding), kernel.shape[:2], strides, dilation)
    out = np.einsum("nhwijc,ijcm->nhwcm", cells, kernel).reshape(*cells.shape[:3], -1)
    return out if bias is None else out + bias


def separable(x, depthwise_kernel, pointwise_kernel, bias, strides, padding, dilation=(1, 1)):
    """Depthwise without bias, then the 1x1 pointwise convolution, then the one bias."""
    out = depthwise(x, depthwise_kernel, None, strides, padding, dilation) @ pointwise_kernel[0, 0]
    return out if bias is None else out + bias


def layer_norm(x, gamma, beta, epsilon):
    """Each position's channel vector to mean 0 and (biased) variance 1, then gamma and beta per channel."""
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + epsilon)
    return out * (1 if gamma is None else gamma) + (0 if beta is None else beta)


def _bilinear_matrix(size: int, scale: int) -> np.ndarray:
    """Half-pixel centres: output o reads input (o + 0.5) / scale - 0.5, clamped to the edge."""
    matrix = np.zeros((size * scale, size))
    for o in range(size * scale):
        source = max((o + 0.5) / scale - 0.5, 0.0)
        low = min(int(source), size - 1)
        high, weight = min(low + 1, size - 1), source - low
        matrix[o, low] += 1 - weight
        matrix[o, high] += weight
    return matrix


def upsample(x, size, interpolation):
    if interpolation == "nearest":
        return x.repeat(size[0], axis=1).repeat(size[1], axis=2)
    rows, cols = (_bilinear_matrix(n, s) for n, s in zip(x.shape[1:3], size))
    return np.einsum("ah,nhwc,bw->nabc", rows, x, cols)


def zero_pad(x, sides):
    return np.pad(x, [(0, 0), *sides, (0, 0)])


def batch_norm(x, w, name, epsilon=1e-3):
    """Inference BatchNorm: the moving statistics, gamma and beta per channel."""
    scale = w[f"{name}.gamma"] / np.sqrt(w[f"{name}.moving_variance"] + epsilon)
    return (x - w[f"{name}.moving_mean"]) * scale + w[f"{name}.beta"]


def projection(x, w, name, strides):
    """A projection shortcut: the 1x1 convolution without bias, strided, then its BatchNorm."""
    return batch_norm(conv(x, w[f"{name}_proj.kernel"], None, strides, "valid"), w, f"{name}_proj_bn")


# ---- each construct: its layers, and the oracle from the Keras-layout weights ----

RELU = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "none": lambda v: v}

CASES = {
    "AvgPool valid": (
        {"AvgPool": {"pool_size": [2, 3], "strides": [2, 1]}},
        lambda x, w: avg_pool(x, (2, 3), (2, 1), "valid"),
    ),
    "AvgPool same, symmetric": (
        {"AvgPool": {"pool_size": 3, "strides": 1, "padding": "same"}},
        lambda x, w: avg_pool(x, (3, 3), (1, 1), "same"),
    ),
    "AvgPool same, stride 2": (
        {"AvgPool": {"pool_size": 2, "strides": 2, "padding": "same"}},
        lambda x, w: avg_pool(x, (2, 2), (2, 2), "same"),
    ),
    "GlobalAvgPool": ({"GlobalAvgPool": {}}, lambda x, w: x.mean(axis=(1, 2))),
    "GlobalMaxPool": ({"GlobalMaxPool": {}}, lambda x, w: x.max(axis=(1, 2))),
    "ZeroPadding": ({"ZeroPadding": {"padding": [[1, 0], [2, 3]]}}, lambda x, w: zero_pad(x, [(1, 0), (2, 3)])),
    "UpSampling nearest": ({"UpSampling": {"size": [2, 3]}}, lambda x, w: upsample(x, (2, 3), "nearest")),
    "UpSampling bilinear": (
        {"UpSampling": {"size": [3, 2], "interpolation": "bilinear"}},
        lambda x, w: upsample(x, (3, 2), "bilinear"),
    ),
    "LayerNorm": ({"LayerNorm": {}}, lambda x, w: layer_norm(x, w["ln1.gamma"], w["ln1.beta"], 1e-3)),
    "LayerNorm on a flat input (nn.LayerNorm)": (
        [{"GlobalAvgPool": {}}, {"LayerNorm": {"epsilon": 0.01}}],
        lambda x, w: layer_norm(x.mean(axis=(1, 2)), w["ln1.gamma"], w["ln1.beta"], 0.01),
    ),
    "LayerNorm beta only": (
        {"LayerNorm": {"scale": False, "epsilon": 0.01}},
        lambda x, w: layer_norm(x, None, w["ln1.beta"], 0.01),
    ),
    "Conv2D dilated, grouped": (
        {"Conv2D": {"filters": 6, "kernel_size": 3, "dilation_rate": [2, 1], "groups": 2, "padding": "same"}},
        lambda x, w: conv(x, w["conv1.kernel"], w["conv1.bias"], (1, 1), "same", (2, 1), 2),
    ),
    "DepthwiseConv2D": (
        {"DepthwiseConv2D": {"kernel_size": [3, 2], "strides": 2, "padding": "same", "depth_multiplier": 2}},
        lambda x, w: depthwise(x, w["dwconv1.kernel"], w["dwconv1.bias"], (2, 2), "same"),
    ),
    "DepthwiseConv2D dilated": (
        {"DepthwiseConv2D": {"kernel_size": 2, "dilation_rate": 2, "activation": "relu"}},
        lambda x, w: RELU["relu"](depthwise(x, w["dwconv1.kernel"], w["dwconv1.bias"], (1, 1), "valid", (2, 2))),
    ),
    "SeparableConv2D": (
        {
            "SeparableConv2D": {
                "filters": 5,
                "kernel_size": 3,
                "padding": "same",
                "depth_multiplier": 2,
                "activation": "tanh",
            }
        },
        lambda x, w: np.tanh(
            separable(
                x, w["sepconv1.depthwise_kernel"], w["sepconv1.pointwise_kernel"], w["sepconv1.bias"], (1, 1), "same"
            )
        ),
    ),
}


# Residual blocks on an (8, 6, 3) input: a stride of 2 reduces it by a whole factor, to (4, 3).
RESIDUAL_INPUT = (8, 6, 3)
SAME_CONV = {"Conv2D": {"filters": 3, "kernel_size": 3, "padding": "same"}}
REDUCING = [
    {"Conv2D": {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False}},
    {"BatchNorm": {}},
]
RESIDUAL_CASES = {
    "identity, relu after the sum": (
        {"Residual": {"layers": [SAME_CONV], "activation": "relu"}},
        lambda x, w: RELU["relu"](conv(x, w["res1_conv1.kernel"], w["res1_conv1.bias"], (1, 1), "same") + x),
    ),
    "projection, stride 2": (
        {"Residual": {"layers": REDUCING, "shortcut": "projection"}},
        lambda x, w: (
            batch_norm(conv(x, w["res1_conv1.kernel"], None, (2, 2), "same"), w, "res1_bn1")
            + projection(x, w, "res1", (2, 2))
        ),
    ),
    "projection of a block keeping the shape": (
        {"Residual": {"layers": [SAME_CONV], "shortcut": "projection", "activation": "tanh"}},
        lambda x, w: np.tanh(
            conv(x, w["res1_conv1.kernel"], w["res1_conv1.bias"], (1, 1), "same") + projection(x, w, "res1", (1, 1))
        ),
    ),
    "nested": (
        {"Residual": {"layers": [SAME_CONV, {"Residual": {"layers": [{"Activation": {"name": "tanh"}}]}}]}},
        lambda x, w: (lambda inner: inner + np.tanh(inner) + x)(
            conv(x, w["res1_conv1.kernel"], w["res1_conv1.bias"], (1, 1), "same")
        ),
    ),
}


@pytest.mark.parametrize("case", RESIDUAL_CASES, ids=list(RESIDUAL_CASES))
def test_both_frameworks_compute_a_residual_s_meaning(case, tmp_path):
    """activation(block(x) + shortcut(x)), the BatchNorms with moving statistics away from 0 and 1."""
    layer, oracle = RESIDUAL_CASES[case]
    torch_model, keras_model = _randomised_pair(_package([layer], tmp_path, RESIDUAL_INPUT))
    _randomise_statistics(torch_model, keras_model)
    images = _images(shape=RESIDUAL_INPUT)
    expected = oracle(images.astype(np.float64), _keras_weights(torch_model, keras_model))
    keras_out = keras.ops.convert_to_numpy(keras_model(images, training=False)).astype(np.float64)
    assert keras_out.shape == expected.shape
    assert np.max(np.abs(keras_out - expected)) <= ORACLE_TOL, "Keras"
    assert oracle_error(torch_model, expected, images) <= ORACLE_TOL, "PyTorch"


def _randomise_statistics(torch_model, keras_model) -> None:
    for module in torch_model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    weights.torch_to_keras(torch_model, keras_model)


def _package(layers: list[dict], folder: Path, input_shape=INPUT):
    return build_architecture({"name": "one", "input": list(input_shape), "layers": layers}, folder)


def _randomised_pair(package, seed: int = 0):
    """Both models with the same random weights (biases, gammas and betas far from their initial 0 and 1)."""
    torch.manual_seed(seed)
    torch_model = package.build_torch_model()
    with torch.no_grad():
        for parameter in torch_model.parameters():
            parameter.normal_(0.0, 0.5)
    keras_model = package.build_keras_model()
    weights.torch_to_keras(torch_model, keras_model)
    return torch_model.eval(), keras_model


def _keras_weights(torch_model, keras_model) -> dict[str, np.ndarray]:
    return {p.label: weights.torch_array(p).astype(np.float64) for p in weights.tensor_pairs(torch_model, keras_model)}


def _images(count: int = 4, scale: float = 1.0, shape=INPUT) -> np.ndarray:
    return (np.random.default_rng(1).normal(size=(count, *shape)) * scale).astype(np.float32)


def torch_output(torch_model, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return to_channels_last(torch_model(torch.from_numpy(to_channels_first(images))).numpy()).astype(np.float64)


def oracle_error(torch_model, expected: np.ndarray, images: np.ndarray) -> float:
    return float(np.max(np.abs(torch_output(torch_model, images) - expected)))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_both_frameworks_compute_the_stated_meaning(case, tmp_path):
    layers, oracle = CASES[case]
    torch_model, keras_model = _randomised_pair(_package(layers if isinstance(layers, list) else [layers], tmp_path))
    images = _images()
    expected = oracle(images.astype(np.float64), _keras_weights(torch_model, keras_model))
    keras_out = keras.ops.convert_to_numpy(keras_model(images, training=False)).astype(np.float64)
    assert keras_out.shape == expected.shape
    assert np.max(np.abs(keras_out - expected)) <= ORACLE_TOL, "Keras"
    assert oracle_error(torch_model, expected, images) <= ORACLE_TOL, "PyTorch"


# ---- planted bugs: the spellings hand-ports and converters get wrong, each caught by the oracle ----


def _exclude_pads_bug(model):
    model.avgpool1.count_include_pad = True  # PyTorch's default


def _pad_then_pool_bug(model):
    pool = model.avgpool1
    model.avgpool1 = nn.Sequential(nn.ZeroPad2d(pool.pad), nn.AvgPool2d(pool.kernel_size, pool.stride))


def _align_corners_bug(model):
    model.upsample1.align_corners = True


def _layer_norm_over_chw_bug(model):
    norm = nn.GroupNorm(1, model.ln1.features, eps=model.ln1.eps)  # one group: mean and variance over (C, H, W)
    norm.weight.data.copy_(model.ln1.weight.data)
    norm.bias.data.copy_(model.ln1.bias.data)
    model.ln1 = norm


def _layer_norm_epsilon_bug(model):
    model.ln1.eps = 1e-5  # PyTorch's default


def _bias_after_depthwise_bug(model):
    """The pointwise step's bias moved onto the depthwise step (filters = depth channels, so it still fits)."""
    layer = model.sepconv1
    with torch.no_grad():
        depthwise = nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=True)
        depthwise.weight.copy_(layer.depthwise.weight)
        depthwise.bias.copy_(layer.pointwise.bias)
        pointwise = nn.Conv2d(8, 8, 1, bias=False)
        pointwise.weight.copy_(layer.pointwise.weight)
    model.sepconv1 = nn.Sequential(depthwise, pointwise)


def _projection_without_batchnorm_bug(model):
    model.res1_proj_bn = nn.Identity()


def _sum_after_the_activation_bug(model):
    """relu(block(x)) + x: the activation moved onto the block's last layer, the sum left without one."""
    model.res1_conv1 = nn.Sequential(model.res1_conv1, nn.ReLU())
    model.act1 = nn.Identity()  # the Residual's own activation: the first in the spec's list


SEPARABLE = {"SeparableConv2D": {"filters": 8, "kernel_size": 3, "padding": "same", "depth_multiplier": 2}}
PLANTED = {
    "count_include_pad=True": ({"AvgPool": {"pool_size": 3, "strides": 1, "padding": "same"}}, _exclude_pads_bug, 1.0),
    "zero pad, then pool": ({"AvgPool": {"pool_size": 2, "strides": 2, "padding": "same"}}, _pad_then_pool_bug, 1.0),
    "align_corners=True": ({"UpSampling": {"size": 2, "interpolation": "bilinear"}}, _align_corners_bug, 1.0),
    "LayerNorm over (C, H, W)": ({"LayerNorm": {}}, _layer_norm_over_chw_bug, 1.0),
    "LayerNorm with epsilon 1e-5": ({"LayerNorm": {}}, _layer_norm_epsilon_bug, 0.03),  # variances near epsilon
    "bias after the depthwise step": (SEPARABLE, _bias_after_depthwise_bug, 1.0),
    "projection without its BatchNorm": (
        RESIDUAL_CASES["projection, stride 2"][0],
        _projection_without_batchnorm_bug,
        1.0,
    ),
    "sum after the activation": (RESIDUAL_CASES["identity, relu after the sum"][0], _sum_after_the_activation_bug, 1.0),
}


@pytest.mark.parametrize("bug", PLANTED, ids=list(PLANTED))
def test_the_oracle_catches_a_planted_bug(bug, tmp_path):
    layer, plant, scale = PLANTED[bug]
    input_shape = RESIDUAL_INPUT if "Residual" in layer else INPUT
    torch_model, keras_model = _randomised_pair(_package([layer], tmp_path, input_shape))
    images = _images(scale=scale, shape=input_shape)
    expected = keras.ops.convert_to_numpy(keras_model(images, training=False)).astype(np.float64)
    assert oracle_error(torch_model, expected, images) <= ORACLE_TOL  # the generated spelling holds
    plant(torch_model)
    assert oracle_error(torch_model, expected, images) > 100 * ORACLE_TOL  # the bug's does not


# ---- cross-framework parity of small networks holding every construct ----

PARITY_SPECS = {
    "pools and padding": [
        {"ZeroPadding": {"padding": [[1, 0], [2, 1]]}},
        {
            "Conv2D": {
                "filters": 4,
                "kernel_size": 3,
                "dilation_rate": 2,
                "padding": "same",
                "activation": "relu",
            }
        },
        {"AvgPool": {"pool_size": 2, "strides": 2, "padding": "same"}},
        {"AvgPool": {"pool_size": 3, "strides": 1, "padding": "same"}},
        {"LayerNorm": {}},
        {"GlobalAvgPool": {}},
        {"LayerNorm": {"center": False}},
    ],
    "depthwise and separable": [
        {
            "DepthwiseConv2D": {
                "kernel_size": 3,
                "strides": 2,
                "padding": "same",
                "depth_multiplier": 2,
                "activation": "tanh",
            }
        },
        {"UpSampling": {"size": [1, 2]}},
        {"SeparableConv2D": {"filters": 5, "kernel_size": [2, 3], "padding": "same", "activation": "relu"}},
        {"LayerNorm": {"scale": False}},
        {"GlobalMaxPool": {}},
    ],
    "grouped convolution": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "groups": 2, "activation": "relu"}},
        {"Conv2D": {"filters": 6, "kernel_size": 2, "dilation_rate": [1, 2], "groups": 2, "padding": "same"}},
        {"GlobalAvgPool": {}},
    ],
    "residual blocks": [
        {"ZeroPadding": {"padding": [[0, 0], [0, 1]]}},  # 10x10: halved by a whole factor
        {"Conv2D": {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {
            "Residual": {
                "shortcut": "projection",
                "activation": "relu",
                "layers": [
                    {"Conv2D": {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False}},
                    {"BatchNorm": {"momentum": 0.9}},
                    {"Activation": {"name": "relu"}},
                    {"Residual": {"layers": [{"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same"}}]}},
                ],
            }
        },
        {"Residual": {"layers": [{"BatchNorm": {}}, {"Conv2D": {"filters": 4, "kernel_size": 1}}]}},
        {"GlobalAvgPool": {}},
    ],
    "bilinear upsampling": [
        {"Conv2D": {"filters": 3, "kernel_size": 3, "activation": "relu"}},
        {"UpSampling": {"size": 2, "interpolation": "bilinear"}},
        {"AvgPool": {"pool_size": 3}},
        {"Flatten": {}},
    ],
}


@pytest.mark.parametrize("name", PARITY_SPECS, ids=list(PARITY_SPECS))
def test_cross_framework_parity(name, tmp_path):
    layers = [*PARITY_SPECS[name], {"Dense": {"units": 10, "activation": "softmax"}}]
    package = _package(layers, tmp_path, (10, 9, 2))
    optimizer = full_optimizer({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9})
    # Keras compiles a grouped convolution with XLA on TensorFlow's CPU, again at every eager step (2 s a step here).
    steps = 10 if name == "grouped convolution" and backends.current() == "tensorflow" else 100
    report = parity.check(package, optimizer, steps=steps)
    bilinear_on_tf = name == "bilinear upsampling" and report.keras_backend == "tensorflow"
    if bilinear_on_tf:
        report.targets |= {"loss": TF_FLOAT32_INSIDE_TOL, "weights": TF_FLOAT32_INSIDE_TOL}
    assert report.judge().ok, report.to_dict()


def test_onnx_export_keeps_every_construct(tmp_path):
    from runtime.interop import export

    layers = [*PARITY_SPECS["pools and padding"][:4], PARITY_SPECS["grouped convolution"][0]]
    layers += PARITY_SPECS["depthwise and separable"][:4]
    layers += [{"UpSampling": {"interpolation": "bilinear"}}, {"GlobalAvgPool": {}}, {"LayerNorm": {"center": False}}]
    package = _package(layers, tmp_path, (10, 9, 2))
    torch_model, _ = parity.build_pair(package)
    images = parity.random_data((10, 9, 2), count=16).test_images
    export.export_onnx(torch_model.eval(), (10, 9, 2), tmp_path / "model.onnx")
    onnx_out = export.onnx_predict(tmp_path / "model.onnx", images)
    assert np.max(np.abs(onnx_out - export.torch_predict(torch_model, images))) <= ORACLE_TOL


def test_global_max_pool_shares_a_tied_maximum_gradient(tmp_path):
    """Keras's reductions (TensorFlow, jax, torch.amax) give each of n tied maxima 1/n of the gradient."""
    torch_model = _package([{"GlobalMaxPool": {}}], tmp_path).build_torch_model()
    images = torch.ones((2, 3, 4, 5), requires_grad=True)  # every position ties
    torch_model(images).sum().backward()
    assert torch.allclose(images.grad, torch.full_like(images, 1 / 20))
    images.grad = None
    torch_model.gmp1 = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())  # the whole gradient to one position
    torch_model(images).sum().backward()
    assert not torch.allclose(images.grad, torch.full_like(images, 1 / 20))


def test_onnx_export_keeps_residual_blocks(tmp_path):
    from fmnist_dsl.testing import check_forward
    from runtime.interop import export

    package = _package([*PARITY_SPECS["residual blocks"], {"Dense": {"units": 10}}], tmp_path, (10, 9, 2))
    assert check_forward(package).ok  # layer by layer: a Residual without activation has no PyTorch submodule
    torch_model, keras_model = parity.build_pair(package)
    _randomise_statistics(torch_model, keras_model)
    images = parity.random_data((10, 9, 2), count=16).test_images
    export.export_onnx(torch_model.eval(), (10, 9, 2), tmp_path / "model.onnx")
    onnx_out = export.onnx_predict(tmp_path / "model.onnx", images)
    assert np.max(np.abs(onnx_out - export.torch_predict(torch_model, images))) <= ORACLE_TOL


def test_an_offset_read_by_a_shortcut_is_not_cancelled(tmp_path):
    """bn1's beta reaches res1_bn1 through a linear 1x1 convolution, which cancels it there, and the sum through the
    identity shortcut, which keeps it: its gradient is not zero, and the trajectory must train it."""
    layers = [
        {"BatchNorm": {}},
        {"Residual": {"layers": [{"Conv2D": {"filters": 3, "kernel_size": 1}}, {"BatchNorm": {}}]}},
        {"GlobalAvgPool": {}},
    ]
    keras_model = _package(layers, tmp_path, RESIDUAL_INPUT).build_keras_model()
    assert parity.cancelled_offsets(keras_model) == {"res1_conv1.bias": "res1_bn1"}
