"""`fmnist-dsl import` on the vocabulary beyond Dense, Conv2D and MaxPool: two specs holding every such layer
(ZeroPadding, dilated and grouped Conv2D, DepthwiseConv2D, SeparableConv2D, AvgPool, UpSampling, LayerNorm and the
global pools) read back from their generated models as themselves, with the same weights bit for bit; a hand-written
PyTorch model spelling them its own way imports with the same function; and what the DSL cannot say is refused,
naming the layer.
"""

import pytest
import torch

from compilers.spec_writer import spec_text
from runtime.common.imported import ImportRefused
from runtime.interop import export
from runtime.interop.importing import keras_file, onnx_file, torch_module
from tests.functional.test_import_cli import TORCH_MODELS
from tests.functional.test_import_round_trip import SavedSources, assert_twins_agree, package_of

# Every layer an ONNX export keeps as one node (or, for SeparableConv2d, two named ones).
CHAIN = """name: chain
input: [28, 28, 1]
layers:
  - ZeroPadding: {padding: [[1, 2], [0, 1]]}
  - Conv2D: {filters: 4, kernel_size: 3, dilation_rate: 2, activation: relu}
  - DepthwiseConv2D: {kernel_size: 3, depth_multiplier: 2, padding: same}
  - Conv2D: {filters: 6, kernel_size: 1, groups: 2, use_bias: false}
  - AvgPool: {pool_size: 3, strides: 1, padding: same}
  - AvgPool: {pool_size: 2}
  - SeparableConv2D: {filters: 6, kernel_size: 3, padding: same, activation: relu}
  - UpSampling: {size: 2, interpolation: bilinear}
  - MaxPool: {pool_size: 2}
  - UpSampling: {size: [1, 2]}
  - GlobalAvgPool: {}
  - LayerNorm: {epsilon: 1.0e-05}
  - Dense: {units: 10, activation: softmax}
"""
# The generated PyTorch spellings of the rest: an asymmetric `same` (a `conv1_pad` ZeroPad2d, read as the conv's
# own, beside a ZeroPadding layer), LayerNorm on a map (ChannelLayerNorm), SamePadAvgPool2d, GlobalMaxPool2d.
SPATIAL = """name: spatial
input: [28, 28, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, strides: 2, padding: same}
  - ZeroPadding: {padding: 1}
  - LayerNorm: {center: false}
  - MaxPool: {pool_size: 3, strides: 2, padding: same}
  - AvgPool: {pool_size: 2, strides: 1, padding: same}
  - LayerNorm: {scale: false, epsilon: 0.01}
  - GlobalMaxPool: {}
  - Dense: {units: 10}
"""


@pytest.mark.parametrize("text", [CHAIN, SPATIAL], ids=["chain", "spatial"])
def test_vocabulary_round_trip(text, tmp_path):
    """The Keras model saved as .keras, the PyTorch model as torch_model.py and a state_dict, and (for the chain,
    which has no BatchNorm or Dropout for the exporter to fold) the ONNX export each read back as the spec."""
    sources = SavedSources(text, tmp_path)
    if sources.package.NAME == "chain":
        shape = tuple(sources.package.INPUT_SHAPE)
        export.export_onnx(sources.torch_model.eval(), shape, tmp_path / "model.onnx")
        sources.readers["onnx"] = (lambda: onnx_file.read(tmp_path / "model.onnx"), False)
    sources.assert_read_back()


def test_hand_written_torch_vocabulary_keeps_its_function(tmp_path):
    """padding=1 with stride 2 is a ZeroPadding and a `valid` convolution; groups equal to the input channels a
    DepthwiseConv2D; nn.AdaptiveMaxPool2d(1) and a flatten a GlobalMaxPool (its tie gradient a training change).
    The twins compute the source's outputs within 1e-5 on 500 test images."""
    imported = torch_module.read(TORCH_MODELS, "Vocabulary", None)
    text = spec_text("vocabulary", imported.input_shape, [(x.kind, x.arguments) for x in imported.layers], [])
    assert text.endswith(
        "  - ZeroPadding: {}\n"
        "  - Conv2D: {filters: 8, kernel_size: 3, strides: 2, activation: relu}\n"
        "  - DepthwiseConv2D: {kernel_size: 3, padding: same, depth_multiplier: 2, dilation_rate: 2, "
        "activation: relu}\n"
        "  - ZeroPadding: {padding: [[0, 1], [0, 1]]}\n"
        "  - AvgPool: {pool_size: 3, strides: 2}\n"
        "  - UpSampling: {interpolation: bilinear}\n"
        "  - UpSampling: {size: [1, 2]}\n"
        "  - GlobalMaxPool: {}\n"
        "  - LayerNorm: {epsilon: 1.0e-05}\n"
        "  - Dense: {units: 10}\n"
    )
    assert [change.split(":")[0] for change in imported.training_changes] == [
        "layer 'global_pool' (index 9, AdaptiveMaxPool2d)"
    ]
    assert_twins_agree(imported, package_of(imported, "vocabulary", tmp_path))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("CeilAvgPool", r"layer 'pool' \(index 1, AvgPool2d\): ceil_mode=True is not in the DSL"),
        ("AlignCorners", r"layer 'up' \(index 1, Upsample\): align_corners=True stretches the corners"),
        ("MapLayerNorm", r"layer 'norm' \(index 2, LayerNorm\): it normalises the trailing axes \(4, 26, 26\)"),
        ("KeptMap", r"layer 'pool' \(index 1, AdaptiveAvgPool2d\): a global pool whose \(1, 1\) map is not flattened"),
    ],
)
def test_torch_vocabulary_refusals_name_the_layer(name, message):
    with pytest.raises(ImportRefused, match=message):
        torch_module.read(TORCH_MODELS, name, None)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            lambda k: k.UpSampling2D(interpolation="bicubic"),
            r"\(index 2, UpSampling2D\): interpolation='bicubic' is not",
        ),
        (lambda k: k.LayerNormalization(rms_scaling=True), r"\(index 2, LayerNormalization\): rms_scaling=True is not"),
        (lambda k: k.GlobalAveragePooling2D(keepdims=True), r"\(index 2, GlobalAveragePooling2D\): keepdims=True is"),
    ],
    ids=["bicubic", "rms_scaling", "keepdims"],
)
def test_keras_vocabulary_refusals_name_the_layer(layer, message, tmp_path):
    import keras

    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(2, 3), layer(keras.layers)])
    model.save(tmp_path / "model.keras")
    with pytest.raises(ImportRefused, match=message):
        keras_file.read(tmp_path / "model.keras")


def test_onnx_padding_that_is_not_same_is_a_zero_padding(tmp_path):
    """An exported Conv2d(stride=2, padding=1) on 28 pixels pads (1, 1); TensorFlow's `same` would pad (0, 1)."""
    model = torch_module._load(TORCH_MODELS, "StridedPadding").eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(tmp_path / "model.onnx"), dynamo=False)
    layers = onnx_file.read(tmp_path / "model.onnx").layers
    assert [(layer.kind, layer.arguments.get("padding")) for layer in layers] == [
        ("ZeroPadding", ((1, 1), (1, 1))),
        ("Conv2D", "valid"),
    ]
