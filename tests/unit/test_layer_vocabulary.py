"""Unit tier: the pooling variants, padding, upsampling, LayerNorm and the grouped, dilated, depthwise and separable
convolutions: their shapes and parameter counts by hand, and what build refuses, located by line and field."""

import subprocess
import sys

import pytest

from compilers.lowering import lower
from dsl import SpecError, infer_shapes, parse_spec
from tests.conftest import REPO


def spec_text(input_shape: str, *layers: str) -> str:
    return f"name: a\ninput: {input_shape}\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)


def inferred(input_shape: str, *layers: str) -> list[tuple[tuple[int, ...], int, int]]:
    shapes = infer_shapes(parse_spec(spec_text(input_shape, *layers)))
    return [(s.output_shape, s.trainable, s.non_trainable) for s in shapes]


# (input, layer, (output shape, trainable, non-trainable)), each count written out by hand.
SHAPES = {
    "avg pool valid": ("[9, 8, 3]", "AvgPool: {}", ((4, 4, 3), 0, 0)),
    "avg pool same, stride 2": ("[9, 8, 3]", "AvgPool: {pool_size: 3, strides: 2, padding: same}", ((5, 4, 3), 0, 0)),
    "global average": ("[9, 8, 3]", "GlobalAvgPool: {}", ((3,), 0, 0)),
    "global max": ("[9, 8, 3]", "GlobalMaxPool: {}", ((3,), 0, 0)),
    "zero padding int": ("[9, 8, 3]", "ZeroPadding: {padding: 2}", ((13, 12, 3), 0, 0)),
    "zero padding pair": ("[9, 8, 3]", "ZeroPadding: {padding: [1, 0]}", ((11, 8, 3), 0, 0)),
    "zero padding sides": ("[9, 8, 3]", "ZeroPadding: {padding: [[0, 1], [2, 3]]}", ((10, 13, 3), 0, 0)),
    "zero padding default": ("[9, 8, 3]", "ZeroPadding: {}", ((11, 10, 3), 0, 0)),
    "upsampling": ("[9, 8, 3]", "UpSampling: {size: [2, 3], interpolation: bilinear}", ((18, 24, 3), 0, 0)),
    "layer norm spatial": ("[9, 8, 3]", "LayerNorm: {}", ((9, 8, 3), 6, 0)),
    "layer norm without beta": ("[9, 8, 3]", "LayerNorm: {center: false}", ((9, 8, 3), 3, 0)),
    # 3x3 taps x (4 / 2 input channels per group) x 6 filters + 6 biases
    "grouped conv": ("[9, 8, 4]", "Conv2D: {filters: 6, kernel_size: 3, groups: 2}", ((7, 6, 6), 3 * 3 * 2 * 6 + 6, 0)),
    # a 3x3 kernel dilated by 2 spans 5x5
    "dilated conv": ("[9, 8, 4]", "Conv2D: {filters: 2, kernel_size: 3, dilation_rate: 2}", ((5, 4, 2), 74, 0)),
    "dilated conv same": (
        "[9, 8, 4]",
        "Conv2D: {filters: 2, kernel_size: 3, dilation_rate: [2, 1], padding: same}",
        ((9, 8, 2), 74, 0),
    ),
    # 3x3 taps x 4 channels x multiplier 2, and 8 biases
    "depthwise": ("[9, 8, 4]", "DepthwiseConv2D: {kernel_size: 3, depth_multiplier: 2}", ((7, 6, 8), 72 + 8, 0)),
    "depthwise same stride 2": (
        "[9, 8, 4]",
        "DepthwiseConv2D: {kernel_size: 3, strides: 2, padding: same}",
        ((5, 4, 4), 40, 0),
    ),
    # depthwise 3x3 x 4 x 2 = 72, pointwise 8 x 5 = 40, one bias per filter = 5 (none after the depthwise step)
    "separable": (
        "[9, 8, 4]",
        "SeparableConv2D: {filters: 5, kernel_size: 3, depth_multiplier: 2}",
        ((7, 6, 5), 72 + 40 + 5, 0),
    ),
    "separable without bias": (
        "[9, 8, 4]",
        "SeparableConv2D: {filters: 5, kernel_size: 3, use_bias: false}",
        ((7, 6, 5), 36 + 20, 0),
    ),
}


@pytest.mark.parametrize("case", SHAPES, ids=list(SHAPES))
def test_shapes_and_parameter_counts_by_hand(case):
    input_shape, layer, expected = SHAPES[case]
    assert inferred(input_shape, layer) == [expected]


def test_weights_table_holds_keras_variables_in_keras_layout():
    spec = parse_spec(
        spec_text(
            "[9, 8, 4]",
            "DepthwiseConv2D: {kernel_size: 3, depth_multiplier: 2, kernel_initializer: he_normal}",
            "SeparableConv2D: {filters: 5, kernel_size: [1, 2], depth_multiplier: 3}",
            "LayerNorm: {center: false}",
            "Conv2D: {filters: 10, kernel_size: 1, groups: 5, use_bias: false}",
        )
    )
    rows = [(row.layer, row.variable, row.shape, row.initializer) for row in lower(spec, "a.yaml").weights]
    assert rows == [
        ("dwconv1", "kernel", (3, 3, 4, 2), "he_normal"),
        ("dwconv1", "bias", (8,), "zeros"),
        ("sepconv1", "depthwise_kernel", (1, 2, 8, 3), "glorot_uniform"),
        ("sepconv1", "pointwise_kernel", (1, 1, 24, 5), "glorot_uniform"),
        ("sepconv1", "bias", (5,), "zeros"),
        ("ln1", "gamma", (5,), "ones"),
        ("conv1", "kernel", (1, 1, 1, 10), "glorot_uniform"),
    ]


# (input, layers, line, field, part of the message); the layer list starts on line 4.
REFUSED = {
    "groups not dividing the input channels": (
        "[9, 8, 4]",
        ["Conv2D: {filters: 6, kernel_size: 3, groups: 3}"],
        4,
        "layers[0].Conv2D.groups",
        "3 groups do not divide the 4 input channels",
    ),
    "groups not dividing the filters": (
        "[9, 8, 4]",
        ["Conv2D: {filters: 5, kernel_size: 3, groups: 2}"],
        4,
        "layers[0].Conv2D.groups",
        "2 groups do not divide the 5 filters",
    ),
    "pool larger than its padded input": (
        "[5, 5, 1]",
        ["ZeroPadding: {padding: 1}", "AvgPool: {pool_size: 8}"],
        5,
        "layers[1].AvgPool.pool_size",
        "8 is larger than the 7x7 input",
    ),
    "dilated kernel larger than its input": (
        "[5, 9, 1]",
        ["Conv2D: {filters: 2, kernel_size: 3, dilation_rate: 3}"],
        4,
        "layers[0].Conv2D.dilation_rate",
        "the dilated kernel spans [7, 7], more than the 5x9 input",
    ),
    "depthwise kernel larger than its input": (
        "[5, 5, 2]",
        ["DepthwiseConv2D: {kernel_size: 6}"],
        4,
        "layers[0].DepthwiseConv2D.kernel_size",
        "6 is larger than the 5x5 input",
    ),
    "strides with dilation": (
        "[9, 9, 2]",
        ["SeparableConv2D: {filters: 2, kernel_size: 3, strides: 2, dilation_rate: 2}"],
        4,
        "layers[0].SeparableConv2D.dilation_rate",
        "strides > 1 together with dilation_rate > 1",
    ),
    "unequal depthwise strides": (
        "[9, 9, 2]",
        ["DepthwiseConv2D: {kernel_size: 3, strides: [1, 2]}"],
        4,
        "layers[0].DepthwiseConv2D.strides",
        "equal strides only",
    ),
    "global pool on a flat input": (
        "[9, 9, 2]",
        ["Flatten: {}", "GlobalAvgPool: {}"],
        5,
        "layers[1].GlobalAvgPool",
        "needs (height, width, channels) feature maps",
    ),
    "global max pool after a global pool": (
        "[9, 9, 2]",
        ["GlobalMaxPool: {}", "GlobalMaxPool: {}"],
        5,
        "layers[1].GlobalMaxPool",
        "got the flat shape (2,)",
    ),
    "upsampling on a flat input": (
        "[9, 9, 2]",
        ["Flatten: {}", "UpSampling: {}"],
        5,
        "layers[1].UpSampling",
        "feature maps",
    ),
    "zero padding on a flat input": (
        "[9, 9, 2]",
        ["Flatten: {}", "ZeroPadding: {}"],
        5,
        "layers[1].ZeroPadding",
        "flat",
    ),
    "upsampled map over the activation limit": (
        "[28, 28, 1]",
        ["Conv2D: {filters: 128, kernel_size: 1}", "UpSampling: {size: 10}"],
        5,
        "layers[1].UpSampling",
        "limits: {activations: N}",
    ),
    "negative padding": ("[9, 9, 2]", ["ZeroPadding: {padding: [1, -1]}"], 4, "", "greater than or equal to 0"),
    "unknown interpolation": (
        "[9, 9, 2]",
        ["UpSampling: {interpolation: bicubic}"],
        4,
        "layers[0].UpSampling.interpolation",
        "'nearest' or 'bilinear'",
    ),
    "zero depth multiplier": (
        "[9, 9, 2]",
        ["DepthwiseConv2D: {kernel_size: 3, depth_multiplier: 0}"],
        4,
        "layers[0].DepthwiseConv2D.depth_multiplier",
        "greater than 0",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_with_its_line_and_field(case):
    input_shape, layers, line, field, part = REFUSED[case]
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_text(input_shape, *layers), "spec.yaml")
    error = caught.value
    assert (error.line, error.field) == (line, field or error.field), str(error)
    assert part in error.message, str(error)


def test_layer_norm_on_a_flat_input():
    assert inferred("[1, 1, 5]", "Flatten: {}", "LayerNorm: {scale: false}")[1] == ((5,), 5, 0)


def test_accepted_neighbours_of_the_refusals():
    assert inferred("[7, 7, 1]", "AvgPool: {pool_size: 7}")[0][0] == (1, 1, 1)  # the window fits exactly
    assert inferred("[5, 9, 1]", "Conv2D: {filters: 2, kernel_size: 3, dilation_rate: 2}")[0][0] == (1, 5, 2)
    assert inferred("[9, 8, 4]", "Conv2D: {filters: 6, kernel_size: 3, groups: 2}")[0][0] == (7, 6, 6)
    assert inferred("[9, 9, 2]", "AvgPool: {pool_size: 12, padding: same}")[0][0] == (1, 1, 2)  # same pads any window


def test_a_refused_new_layer_exits_2_through_the_command_and_writes_nothing(tmp_path):
    spec = tmp_path / "groups.yaml"
    spec.write_text(spec_text("[9, 8, 4]", "Conv2D: {filters: 6, kernel_size: 3, groups: 3}"))
    command = [sys.executable, "-m", "compilers.cli", "build", str(spec), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 2
    assert (
        result.stderr
        == "fmnist-dsl: groups.yaml:4: layers[0].Conv2D.groups: 3 groups do not divide the 4 input channels\n"
    )
    assert not (tmp_path / "out").exists()
