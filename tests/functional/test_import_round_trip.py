"""`fmnist-dsl import`'s readers on the example specs' own generated models: each saved model (the Keras model as
.keras, the PyTorch model as its torch_model.py and a state_dict) reads back as the same normalised spec, and its
twins hold the same weights, bit for bit, in both frameworks; the ONNX export reads back with the same inference.
PyTorch spells a Dense's own activation and an Activation layer right after it alike, so from PyTorch such an
Activation reads back as the Dense's own: the same function, said as Keras would say it.
"""

import numpy as np
import pytest
import torch

from compilers.naming import class_name
from compilers.project import build_and_import
from compilers.spec_writer import spec_text
from dsl import load_spec, parse_spec
from runtime.common.data import load_split_arrays
from runtime.common.imported import ImportRefused, spec_layers
from runtime.interop import export, weights
from runtime.interop.importing import keras_file, onnx_file, torch_module, twins
from runtime.torch.init import load_initial_weights
from tests.conftest import SPECS

# The example specs without a Residual: a spec with one (resnet, 2.8M parameters) is read back from its .keras file
# and its torch_model.py, not its ONNX export; a small spec of nested blocks goes through every reader in
# tests/functional/test_import_residual.py.
CHAINS = [path for path in SPECS if "Residual:" not in path.read_text()]

INITIALIZERS = ("kernel_initializer", "bias_initializer")


def said(imported, name: str, keep_initializers: bool = True) -> dict:
    """The imported model as the normalised spec the import writes, without its name (and training section)."""
    text = spec_text(name, imported.input_shape, spec_layers(imported.layers), ["header"])
    return normalised(parse_spec(text), keep_initializers)


def normalised(spec, keep_initializers: bool) -> dict:
    return {"input": list(spec.input), "layers": _normalised(spec.model_dump(mode="json")["layers"], keep_initializers)}


def _normalised(entries: list, keep_initializers: bool) -> list:
    layers = []
    for entry in entries:
        ((kind, arguments),) = entry.items()
        arguments = {k: v for k, v in arguments.items() if keep_initializers or k not in INITIALIZERS}
        if kind == "Residual":
            arguments["layers"] = _normalised(arguments["layers"], keep_initializers)
        layers.append({kind: arguments})
    return layers


def as_read_from_pytorch(spec: dict) -> dict:
    """A normalised spec with each Activation right after a Dense or Conv2D without one made that layer's own."""
    return spec | {"layers": _as_read_from_pytorch(spec["layers"])}


def _as_read_from_pytorch(entries: list) -> list:
    layers = []
    for layer in entries:
        ((kind, arguments),) = layer.items()
        ((previous_kind, previous),) = layers[-1].items() if layers else ((None, {}),)
        if kind == "Activation" and previous_kind in ("Dense", "Conv2D") and previous["activation"] == "none":
            previous["activation"] = arguments["name"]
        else:
            arguments = dict(arguments)
            if kind == "Residual":
                arguments["layers"] = _as_read_from_pytorch(arguments["layers"])
            layers.append({kind: arguments})
    return layers


def package_of(imported, name: str, tmp_path):
    """The package of the spec an import writes, built and imported."""
    text = spec_text(name, imported.input_shape, spec_layers(imported.layers), [])
    (tmp_path / "imported.yaml").write_text(text)
    return build_and_import(tmp_path / "imported.yaml", tmp_path / "imported")


def trained_like_models(package):
    """Both models with the same non-trivial weights: seeded kernels, and BatchNorm statistics away from 0 and 1."""
    torch_model = package.build_torch_model()
    load_initial_weights(torch_model, package.WEIGHTS, seed=3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in torch_model.state_dict().items():
            if name.endswith(("running_mean", "running_var", "bias")) and tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    keras_model = package.build_keras_model()
    weights.torch_to_keras(torch_model.eval(), keras_model)
    return torch_model, keras_model


def assert_same_weights(package, imported, torch_model, keras_model) -> None:
    models = twins.build_twins(package, imported)
    for name, tensor in torch_model.state_dict().items():
        assert torch.equal(models["torch"].state_dict()[name], tensor), name
    for original, twin in zip(keras_model.weights, models["keras"].weights, strict=True):
        assert np.array_equal(np.asarray(original), np.asarray(twin)), original.path


class SavedSources:
    """A spec written in a test, its package, both models with trained-like weights, and readers of them saved as
    .keras and as torch_model.py with a state_dict: name -> (read, whether it keeps initialisers)."""

    def __init__(self, text: str, tmp_path):
        self.spec_path = tmp_path / "spec.yaml"
        self.spec_path.write_text(text)
        self.package = build_and_import(self.spec_path, tmp_path / "package")
        self.torch_model, self.keras_model = trained_like_models(self.package)
        self.keras_model.save(tmp_path / "model.keras")
        torch.save(self.torch_model.state_dict(), tmp_path / "weights.pt")
        source = tmp_path / "package" / self.package.NAME / "torch_model.py"
        self.readers = {
            "keras": (lambda: keras_file.read(tmp_path / "model.keras"), True),
            "torch": (lambda: torch_module.read(source, class_name(self.package.NAME), tmp_path / "weights.pt"), False),
        }

    def assert_read_back(self) -> None:
        """Each reader gives back the spec, no training change, and the same weights bit for bit in both twins."""
        for name, (read, initializers) in self.readers.items():
            imported = read()
            expected = normalised(load_spec(self.spec_path), initializers)
            assert said(imported, self.package.NAME, initializers) == expected, name
            assert imported.training_changes == [], name
            assert_same_weights(self.package, imported, self.torch_model, self.keras_model)


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda path: path.stem)
def test_keras_file_round_trip(spec_path, tmp_path):
    package = build_and_import(spec_path, tmp_path / "package")
    torch_model, keras_model = trained_like_models(package)
    keras_model.save(tmp_path / "model.keras")
    imported = keras_file.read(tmp_path / "model.keras")
    assert said(imported, package.NAME) == normalised(load_spec(spec_path), keep_initializers=True)
    assert_same_weights(package, imported, torch_model, keras_model)


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda path: path.stem)
def test_torch_module_round_trip(spec_path, tmp_path):
    """A PyTorch model keeps no record of its initialisers: the spec names the DSL's defaults, the rest is the same."""
    package = build_and_import(spec_path, tmp_path / "package")
    torch_model, keras_model = trained_like_models(package)
    torch.save(torch_model.state_dict(), tmp_path / "weights.pt")
    source = tmp_path / "package" / package.NAME / "torch_model.py"
    imported = torch_module.read(source, class_name(package.NAME), tmp_path / "weights.pt")
    spec = normalised(load_spec(spec_path), False)
    assert said(imported, package.NAME, keep_initializers=False) == as_read_from_pytorch(spec)
    assert imported.training_changes == []  # the generated BatchNorm already tracks the biased variance
    twins_package = package if as_read_from_pytorch(spec) == spec else package_of(imported, package.NAME, tmp_path)
    assert_same_weights(twins_package, imported, torch_model, keras_model)


def test_a_changed_layer_fails_the_round_trip(tmp_path):
    """The comparison sees a planted difference: a saved model whose BatchNorm epsilon is not the spec's."""
    spec_path = next(path for path in SPECS if path.stem == "cnn")
    package = build_and_import(spec_path, tmp_path / "package")
    keras_model = package.build_keras_model()
    keras_model.get_layer("bn1").epsilon = 0.002
    keras_model.save(tmp_path / "model.keras")
    imported = keras_file.read(tmp_path / "model.keras")
    assert said(imported, package.NAME) != normalised(load_spec(spec_path), keep_initializers=True)
    assert imported.layers[1].arguments["epsilon"] == 0.002


def test_weights_of_another_model_are_refused(tmp_path):
    """A weights file whose arrays do not fit the architecture: one line naming the layer."""
    package = build_and_import(next(path for path in SPECS if path.stem == "lenet5"), tmp_path / "package")
    imported = keras_file.read(_saved(package, tmp_path))
    imported.layers[0].weights["kernel"] = imported.layers[0].weights["kernel"][:, :, :, :2]
    with pytest.raises(ImportRefused, match=r"layer 'conv1' \(index \d+, Conv2D\): weight kernel has shape"):
        twins.build_twins(package, imported)


def _saved(package, tmp_path):
    package.build_keras_model().save(tmp_path / "model.keras")
    return tmp_path / "model.keras"


PADDED = """name: padded
input: [28, 28, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, strides: 2, padding: same, activation: relu}
  - MaxPool: {pool_size: 3, strides: 2, padding: same}
  - Conv2D: {filters: 4, kernel_size: 4, padding: same}
  - BatchNorm: {momentum: 0.8}
  - Flatten: {}
  - BatchNorm: {}
  - Dense: {units: 10}
  - Activation: {name: softmax}
"""


def test_explicit_pads_and_a_batchnorm_after_flatten_round_trip(tmp_path):
    """TensorFlow's asymmetric `same` (PyTorch's explicit ZeroPad2d and -inf ConstantPad2d before the layer) reads
    back as `same`, and a BatchNorm between Flatten and Dense keeps PyTorch's flat order in its entries."""
    spec_path = tmp_path / "padded.yaml"
    spec_path.write_text(PADDED)
    package = build_and_import(spec_path, tmp_path / "package")
    torch_model, keras_model = trained_like_models(package)
    torch.save(torch_model.state_dict(), tmp_path / "weights.pt")
    source = tmp_path / "package" / "padded" / "torch_model.py"
    imported = torch_module.read(source, "Padded", tmp_path / "weights.pt")
    spec = normalised(load_spec(spec_path), False)
    assert said(imported, "padded", keep_initializers=False) == as_read_from_pytorch(spec) != spec
    assert imported.layers[-1].arguments["activation"] == "softmax"  # the Activation after the last Dense
    assert_same_weights(package_of(imported, "padded", tmp_path), imported, torch_model, keras_model)


@pytest.mark.parametrize("spec_path", CHAINS, ids=lambda path: path.stem)
def test_onnx_export_reads_back(spec_path, tmp_path):
    """The ONNX export (`fmnist-dsl export --to onnx`) reads back with the same inference, on the first 500 test
    images. The exporter folds an inference BatchNorm into the convolution before it and drops Dropout, so only a
    spec without them reads back as itself, with the same weights bit for bit."""
    package = build_and_import(spec_path, tmp_path / "package")
    torch_model, keras_model = trained_like_models(package)
    export.export_onnx(torch_model.eval(), tuple(package.INPUT_SHAPE), tmp_path / "model.onnx")
    imported = onnx_file.read(tmp_path / "model.onnx")
    spec = load_spec(spec_path)
    imported_package = package_of(imported, package.NAME, tmp_path)
    if not {"BatchNorm", "Dropout"} & {kind for kind, _ in spec.layer_list()}:
        assert said(imported, package.NAME, keep_initializers=False) == as_read_from_pytorch(normalised(spec, False))
        assert_same_weights(imported_package, imported, torch_model, keras_model)
    assert_twins_agree(imported, imported_package)


def assert_twins_agree(imported, imported_package) -> None:
    """The twins of the package built from `imported`'s spec compute the source's outputs within 1e-5 on the first
    500 test images."""
    models = twins.build_twins(imported_package, imported)
    images = load_split_arrays().test_images[:500]
    source = imported.predict(images)
    for framework, model in models.items():
        assert np.max(np.abs(export.predict(framework, model, images) - source)) <= 1e-5, framework
