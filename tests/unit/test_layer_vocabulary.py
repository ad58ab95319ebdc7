"""Unit tier: the pooling variants, padding, upsampling, LayerNorm, the grouped, dilated, depthwise and separable
convolutions and residual blocks: their shapes and parameter counts by hand, and what build refuses, located by line
and field."""

import subprocess
import sys

import pytest

from compilers.lowering import lower
from dsl import SpecError, infer_shapes, parse_spec
from tests.conftest import REPO


def spec_text(input_shape: str, *layers: str) -> str:
    """A spec of these layers, one entry each; a line starting with a space continues the entry above it."""
    lines = (f"  {layer}\n" if layer.startswith(" ") else f"  - {layer}\n" for layer in layers)
    return f"name: a\ninput: {input_shape}\nlayers:\n" + "".join(lines)


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
    # 3x3x3x3 kernel + 3 biases in the block; the identity shortcut holds nothing
    "residual identity": (
        "[8, 6, 3]",
        "Residual: {layers: [{Conv2D: {filters: 3, kernel_size: 3, padding: same}}], activation: relu}",
        ((8, 6, 3), 84, 0),
    ),
    # block: 3x3x3x5 kernel (no bias) + BatchNorm 2x5 (+ 2x5 state); projection: 1x1x3x5 kernel + BatchNorm the same
    "residual projection, stride 2": (
        "[8, 6, 3]",
        "Residual: {shortcut: projection, layers: [{Conv2D: {filters: 5, kernel_size: 3, strides: 2, padding: same, "
        "use_bias: false}}, BatchNorm: {}]}",
        ((4, 3, 5), 135 + 10 + 15 + 10, 20),
    ),
    # a projection of a valid 3x3 convolution: 6x6 to 3x3 is a whole factor, 2 (the 1x1 convolution's strides)
    "residual projection, valid window": (
        "[6, 6, 2]",
        "Residual: {shortcut: projection, layers: [{Conv2D: {filters: 4, kernel_size: 4, strides: 1}}, {MaxPool: {}}]}",
        ((1, 1, 4), 4 * 4 * 2 * 4 + 4 + 2 * 4 + 8, 8),
    ),
    # outer: inner block (1x1x3x3 + 3) twice nested, then the outer's own 1x1 Conv2D without bias (9)
    "nested residuals": (
        "[5, 5, 3]",
        "Residual: {layers: [{Residual: {layers: [{Conv2D: {filters: 3, kernel_size: 1}}]}}, "
        "{Conv2D: {filters: 3, kernel_size: 1, use_bias: false}}]}",
        ((5, 5, 3), 12 + 9, 0),
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
    "identity shortcut of a block changing the channels": (
        "[8, 8, 2]",
        ["Conv2D: {filters: 2, kernel_size: 1}", "Residual:", "    layers: [{Conv2D: {filters: 3, kernel_size: 1}}]"],
        6,  # the block's mapping
        "layers[1].Residual",
        "shortcut identity adds the (8, 8, 2) input to the block's (8, 8, 3) output: use shortcut: projection",
    ),
    "projection of a reduction that is not a whole factor": (
        "[7, 7, 2]",
        [
            "Residual:",
            "    shortcut: projection",
            "    layers: [{Conv2D: {filters: 3, kernel_size: 3, strides: 2, padding: same}}]",
        ],
        5,
        "layers[0].Residual",
        "the block takes 7x7 to 4x4, not a reduction by a whole factor",
    ),
    "projection of a block that grows": (
        "[4, 4, 2]",
        ["Residual: {shortcut: projection, layers: [{UpSampling: {}}]}"],
        4,
        "layers[0].Residual",
        "the block takes 4x4 to 8x8",
    ),
    "Flatten inside a block": (
        "[4, 4, 2]",
        ["Residual:", "    layers:", "      - Dropout: {rate: 0.1}", "      - Flatten: {}"],
        7,
        "layers[0].Residual.layers[1].Flatten",
        "a Residual's block takes any layer but Flatten",
    ),
    "a block ending flat": (
        "[4, 4, 2]",
        ["Residual: {shortcut: projection, layers: [{GlobalAvgPool: {}}]}"],
        4,
        "layers[0].Residual",
        "its block ends in the flat shape (2,)",
    ),
    "residual on a flat input": (
        "[4, 4, 2]",
        ["Flatten: {}", "Residual: {layers: [{Dense: {units: 32}}]}"],
        5,
        "layers[1].Residual",
        "needs (height, width, channels) feature maps",
    ),
    "a misfit inside a nested block": (
        "[4, 4, 2]",
        ["Residual: {layers: [{Residual: {layers: [{MaxPool: {pool_size: 5}}]}}]}"],
        4,
        "layers[0].Residual.layers[0].Residual.layers[0].MaxPool.pool_size",
        "5 is larger than the 4x4 input",
    ),
    "a block's values over the activation limit": (
        "[28, 28, 1]",
        [
            "Residual:",
            "    shortcut: projection",
            "    layers:",
            "      - UpSampling: {size: 10}",
            "      - Conv2D: {filters: 128, kernel_size: 1}",
            "      - MaxPool: {pool_size: 10}",
        ],
        5,
        "layers[0].Residual",
        # 280 x 280 x (1 + 128) upsampled and convolved, 28 x 28 x 128 four times: pool, projection, its BatchNorm, sum
        "(this one 10,515,008)",
    ),
    "unknown shortcut": (
        "[4, 4, 2]",
        ["Residual: {shortcut: dense, layers: [{Dropout: {rate: 0.1}}]}"],
        4,
        "layers[0].Residual.shortcut",
        "'identity' or 'projection'",
    ),
    "empty block": ("[4, 4, 2]", ["Residual: {layers: []}"], 4, "layers[0].Residual.layers", "at least 1 item"),
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


COMMAND_REFUSALS = {
    "groups": (
        spec_text("[9, 8, 4]", "Conv2D: {filters: 6, kernel_size: 3, groups: 3}"),
        "groups.yaml:4: layers[0].Conv2D.groups: 3 groups do not divide the 4 input channels",
    ),
    "residual": (
        spec_text(
            "[8, 8, 4]", "Residual: {layers: [{Conv2D: {filters: 4, kernel_size: 3, strides: 2, padding: same}}]}"
        ),
        "residual.yaml:4: layers[0].Residual: shortcut identity adds the (8, 8, 4) input to the block's (4, 4, 4) "
        "output: use shortcut: projection",
    ),
}


@pytest.mark.parametrize("name", COMMAND_REFUSALS)
def test_a_refused_new_layer_exits_2_through_the_command_and_writes_nothing(tmp_path, name):
    text, line = COMMAND_REFUSALS[name]
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    command = [sys.executable, "-m", "compilers.cli", "build", str(spec), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 2
    assert result.stderr == f"fmnist-dsl: {line}\n"
    assert not (tmp_path / "out").exists()


RESIDUAL_NET = spec_text(
    "[8, 8, 2]",
    "Residual:",
    "    shortcut: projection",
    "    activation: relu",
    "    layers:",
    "      - Conv2D: {filters: 4, kernel_size: 3, strides: 2, padding: same, use_bias: false}",
    "      - BatchNorm: {}",
    "      - Residual: {layers: [{Conv2D: {filters: 4, kernel_size: 1, kernel_initializer: he_normal}}]}",
    "GlobalAvgPool: {}",
    "Dense: {units: 10}",
)


def test_a_residual_s_layers_are_flat_rows_named_after_it():
    model = lower(parse_spec(RESIDUAL_NET), "a.yaml")
    rows = [(row.name, row.kind, row.output_attr, row.trainable, row.non_trainable) for row in model.layers]
    assert rows == [
        ("res1_conv1", "Conv2D", "res1_conv1", 72, 0),
        ("res1_bn1", "BatchNorm", "res1_bn1", 8, 8),
        ("res1_res1_conv1", "Conv2D", "res1_res1_conv1", 20, 0),
        ("res1_res1", "Residual", "", 0, 0),  # a Residual's row is its sum, a line of forward
        ("res1_proj", "Conv2D", "res1_proj", 8, 0),
        ("res1_proj_bn", "BatchNorm", "res1_proj_bn", 8, 8),
        ("res1", "Residual", "", 0, 0),  # the sum: its activation, act1, follows it in forward
        ("gap1", "GlobalAvgPool", "gap1_flatten", 0, 0),
        ("fc1", "Dense", "fc1", 50, 0),
    ]
    assert (model.trainable, model.non_trainable) == (72 + 8 + 20 + 8 + 8 + 50, 16)
    weights = [(row.layer, row.variable, row.shape, row.initializer) for row in model.weights]
    assert weights[:4] == [
        ("res1_conv1", "kernel", (3, 3, 2, 4), "glorot_uniform"),
        ("res1_bn1", "gamma", (4,), "ones"),
        ("res1_bn1", "beta", (4,), "zeros"),
        ("res1_bn1", "moving_mean", (4,), "zeros"),
    ]
    # the projection: a 1x1 kernel without bias from the block's input channels to its output channels, the DSL's
    # default initialiser, then a BatchNorm
    assert ("res1_proj", "kernel", (1, 1, 2, 4), "glorot_uniform") in weights
    assert ("res1_res1_conv1", "kernel", (1, 1, 4, 4), "he_normal") in weights
    assert not [row for row in weights if row[:2] == ("res1_proj", "bias")]


def test_a_residual_net_generates_a_functional_model_and_a_visible_sum():
    from compilers.render import render_package, render_standalone

    files = render_package(lower(parse_spec(RESIDUAL_NET), "a.yaml"))
    torch_source, keras_source = files["torch_model.py"], files["keras_model.py"]
    assert "        shortcut = self.res1_proj_bn(self.res1_proj(x))\n" in torch_source
    # the nested block keeps its own shortcut, added before the outer one, and the activation after the sum
    forward = torch_source.split("def forward")[1]
    assert forward.index("shortcut2 = x") < forward.index("x = x + shortcut2") < forward.index("x = x + shortcut\n")
    assert forward.index("x = x + shortcut\n") < forward.index("x = self.act1(x)")
    assert "self.res1_proj = nn.Conv2d(2, 4, kernel_size=(1, 1), stride=(2, 2), bias=False)" in torch_source
    assert "def build_model() -> keras.Model:" in keras_source and "keras.Sequential" not in keras_source
    assert "    inputs = keras.Input(shape=(8, 8, 2))\n" in keras_source
    assert 'x = layers.Add(name="res1")([x, shortcut])' in keras_source
    assert 'x = layers.Activation("relu", name="act1")(x)' in keras_source
    assert 'return keras.Model(inputs, x, name="a")' in keras_source
    standalone = render_standalone(lower(parse_spec(RESIDUAL_NET), "a.yaml"))
    assert standalone["torch_model.py"].split("def forward")[-1] == forward
    assert standalone["keras_model.py"].split("def build_model")[1] == keras_source.split("def build_model")[1]


def test_a_chain_still_generates_keras_sequential():
    from compilers.render import render_package

    source = render_package(lower(parse_spec(spec_text("[8, 8, 2]", "Flatten: {}")), "a.yaml"))["keras_model.py"]
    assert "return keras.Sequential(" in source and "Add" not in source


def test_lint_reads_the_layers_inside_a_block():
    from dsl.lint import lint_text

    text = spec_text(
        "[8, 8, 2]",
        "Residual: {layers: [{Conv2D: {filters: 2, kernel_size: 3, padding: same}}, {BatchNorm: {}}]}",
    )
    findings = [(finding.line, finding.code) for finding in lint_text(text)]
    assert findings == [(4, "FM101")]


def test_the_json_schema_nests_a_residual_s_layers():
    from dsl.spec import Spec

    residual = Spec.model_json_schema()["$defs"]["Residual"]["properties"]
    refs = [item["$ref"] for item in residual["layers"]["items"]["oneOf"]]
    assert "#/$defs/ResidualEntry" in refs and "#/$defs/Conv2DEntry" in refs
    assert residual["shortcut"]["enum"] == ["identity", "projection"]
