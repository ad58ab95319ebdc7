"""`fmnist-dsl import` of residual blocks: a value feeding two paths joined by an add, one path nothing or a
projection (a 1x1 Conv2D and a BatchNorm), read as the DSL's Residual. A small spec of nested blocks reads back as
itself from its .keras file, its torch_model.py, its exported program and (the same inference) its ONNX export (the
`resnet` example, 2.8M parameters, reads back from its .keras file and torch_model.py in
test_import_round_trip.py); a hand-written PyTorch basic-block network and a functional Keras model with
`layers.Add()` import with twins that compute their outputs.
"""

import pytest
import torch

from compilers.project import build_and_import
from compilers.spec_writer import spec_text
from runtime.common.imported import ImportRefused, spec_layers
from runtime.interop import export
from runtime.interop.importing import exported_program, keras_file, onnx_file, twins
from tests.functional.import_sources import keras_models
from tests.functional.test_import_cli import TORCH_MODELS, assert_agrees, fmnist_dsl, saved_keras, saved_torch
from tests.functional.test_import_round_trip import SavedSources, assert_twins_agree, package_of

# An identity block whose block ends in a nested identity block, then a strided block with a projection.
BLOCKS = """name: blocks
input: [28, 28, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, padding: same, use_bias: false}
  - BatchNorm: {}
  - Activation: {name: relu}
  - Residual:
      activation: relu
      layers:
        - Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu}
        - Residual:
            layers:
              - Conv2D: {filters: 4, kernel_size: 3, padding: same}
              - BatchNorm: {momentum: 0.9}
  - Residual:
      shortcut: projection
      activation: relu
      layers:
        - Conv2D: {filters: 8, kernel_size: 3, strides: 2, padding: same, use_bias: false}
        - BatchNorm: {}
        - Activation: {name: relu}
        - Conv2D: {filters: 8, kernel_size: 3, padding: same}
  - GlobalAvgPool: {}
  - Dense: {units: 10, activation: softmax}
"""


def test_nested_blocks_round_trip(tmp_path):
    """From the .keras file, torch_model.py with a state_dict, and the exported program: the same spec (initialisers
    aside for PyTorch) and the same weights bit for bit, the projection's included. From the ONNX export, whose
    BatchNorms are folded into the convolutions (the projection's into a biased 1x1 convolution, said as the DSL's
    projection with the same inference): twins within 1e-5 of onnxruntime."""
    sources = SavedSources(BLOCKS, tmp_path)
    torch_model, package = sources.torch_model.eval(), sources.package
    torch.export.save(torch.export.export(torch_model, (torch.zeros(2, 1, 28, 28),)), tmp_path / "model.pt2")
    export.export_onnx(torch_model, tuple(package.INPUT_SHAPE), tmp_path / "model.onnx")
    sources.readers["pt2"] = (lambda: exported_program.read(tmp_path / "model.pt2"), False)
    sources.assert_read_back()
    imported = onnx_file.read(tmp_path / "model.onnx")
    assert [(layer.kind, layer.arguments["shortcut"]) for layer in imported.layers[-4:-2]] == [
        ("Residual", "identity"),
        ("Residual", "projection"),
    ]
    assert_twins_agree(imported, package_of(imported, package.NAME, tmp_path))


def test_a_planted_difference_fails_the_nested_round_trip(tmp_path):
    """The comparison sees a projection whose BatchNorm is not the spec's: the reader refuses it, naming it."""
    spec_path = tmp_path / "blocks.yaml"
    spec_path.write_text(BLOCKS)
    keras_model = build_and_import(spec_path, tmp_path / "package").build_keras_model()
    keras_model.get_layer("res2_proj_bn").momentum = 0.9
    keras_model.save(tmp_path / "model.keras")
    try:
        keras_file.read(tmp_path / "model.keras")
    except ValueError as refused:
        assert "layer 'res2_proj_bn'" in str(refused) and "momentum=0.9 in a projection shortcut" in str(refused)
    else:
        raise AssertionError("a projection BatchNorm with momentum 0.9 was read as the DSL's")


def test_hand_written_torch_basic_blocks(tmp_path):
    """`out = self.body(x) + self.shortcut(x)` then F.relu: an identity block and a projection; the twins agree
    with the source on the official test images, and nn.BatchNorm2d's training change names each Residual."""
    saved_torch("SmallResNet", tmp_path / "resnet.pt")
    result = fmnist_dsl("import", f"{TORCH_MODELS}:SmallResNet", "--weights", "resnet.pt", cwd=tmp_path)
    assert_agrees(result)
    spec = (tmp_path / "smallresnet.yaml").read_text()
    assert spec.endswith(
        "  - Residual:\n"
        "      activation: relu\n"
        "      layers:\n"
        "        - Conv2D: {filters: 8, kernel_size: 3, padding: same, use_bias: false}\n"
        "        - BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}\n"
        "        - Activation: {name: relu}\n"
        "        - Conv2D: {filters: 8, kernel_size: 3, padding: same, use_bias: false}\n"
        "        - BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}\n"
        "  - Residual:\n"
        "      shortcut: projection\n"
        "      activation: relu\n"
        "      layers:\n"
        "        - ZeroPadding: {}\n"
        "        - Conv2D: {filters: 16, kernel_size: 3, strides: 2, use_bias: false}\n"
        "        - BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}\n"
        "        - Activation: {name: relu}\n"
        "        - Conv2D: {filters: 16, kernel_size: 3, padding: same, use_bias: false}\n"
        "        - BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}\n"
        "  - GlobalAvgPool: {}\n"
        "  - Dense: {units: 10}\n"
    )
    assert "# training differs: layers[3]: layer 'block1.body.1'" in spec
    assert "training differs: layers[4]: layer 'block2.shortcut.1'" in spec.replace("\n#   ", " ")


def test_hand_written_keras_add(tmp_path):
    """A functional model with `layers.Add()`: an identity block written shortcut first and a projection, whose
    He initialiser the header names; its twins compute the source's outputs within 1e-5."""
    imported = keras_file.read(saved_keras(keras_models.residual_cnn, tmp_path / "residual.keras"))
    text = spec_text("residual", imported.input_shape, spec_layers(imported.layers), [])
    assert text.endswith(
        "  - Residual:\n"
        "      activation: relu\n"
        "      layers:\n"
        "        - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}\n"
        "        - Conv2D: {filters: 8, kernel_size: 3, padding: same}\n"
        "  - Residual:\n"
        "      shortcut: projection\n"
        "      activation: relu\n"
        "      layers:\n"
        "        - Conv2D: {filters: 16, kernel_size: 3, strides: 2, padding: same, use_bias: false}\n"
        "        - BatchNorm: {}\n"
        "  - GlobalAvgPool: {}\n"
        "  - Dense: {units: 10, activation: softmax}\n"
    )
    assert imported.notes == [
        "layer 'projection' (index 7, Conv2D): a projection's kernel_initializer he_normal is not the DSL's (its "
        "projection draws from glorot_uniform; training only)"
    ]
    assert_twins_agree(imported, package_of(imported, "residual", tmp_path))


def test_a_projection_strided_otherwise_is_refused(tmp_path):
    """On a 6x6 input a block of stride 3 and a 1x1 projection of stride 4 both give 2x2 maps, which Keras adds; the
    DSL's projection takes the block's reduction, stride 3, so the twins' weights are refused, naming the layer."""
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=(6, 6, 1))
    block = layers.Conv2D(2, 3, strides=3)(inputs)
    shortcut = layers.BatchNormalization()(layers.Conv2D(2, 1, strides=4, use_bias=False, name="proj")(inputs))
    outputs = layers.Dense(10)(layers.Flatten()(layers.Add()([block, shortcut])))
    keras.Model(inputs, outputs).save(tmp_path / "strided.keras")
    imported = keras_file.read(tmp_path / "strided.keras")
    refusal = r"layer 'proj' \(index \d, Conv2D\): strides \(4, 4\); the DSL's layer here has \(3, 3\)"
    with pytest.raises(ImportRefused, match=refusal):
        twins.build_twins(package_of(imported, "strided", tmp_path), imported)
