"""Weight transfer between the generated PyTorch and Keras models, over random architectures."""

import importlib
from pathlib import Path

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from compilers.project import build_and_import  # noqa: E402
from fmnist_dsl.strategies import architectures, build_architecture  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402
from tests.conftest import REPO  # noqa: E402

CLASSES = 10


def randomize_torch(model, seed: int) -> None:
    """Fresh random values in every parameter and BatchNorm statistic, so a lost copy cannot go unseen."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            values = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype)
            tensor.copy_(values + 0.5 if name.endswith("running_var") else values - 0.5)


def randomize_keras(model, seed: int) -> None:
    """Fresh random values in every Keras weight (variances positive)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        values = rng.random(tuple(variable.shape))
        variable.assign((values + 0.5 if "variance" in variable.name else values - 0.5).astype(variable.dtype))


def torch_state(model) -> dict[str, np.ndarray]:
    """Every tensor that carries weights, as numpy."""
    return {k: v.numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


@settings(max_examples=12, deadline=None)
@given(spec=architectures(CLASSES), seed=st.integers(0, 2**16))
def test_round_trip_gives_identical_weights(spec, seed, tmp_path_factory):
    package = build_architecture(spec, tmp_path_factory.mktemp("round"))
    source, target, keras_model = package.build_torch_model(), package.build_torch_model(), package.build_keras_model()
    randomize_torch(source, seed)
    randomize_torch(target, seed + 1)
    weights.torch_to_keras(source, keras_model)
    weights.keras_to_torch(keras_model, target)
    expected, got = torch_state(source), torch_state(target)
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name


@settings(max_examples=15, deadline=None)
@given(spec=architectures(CLASSES), seed=st.integers(0, 2**16))
def test_forward_parity_after_transfer_both_directions(spec, seed, tmp_path_factory):
    package = build_architecture(spec, tmp_path_factory.mktemp("forward"))
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    images = parity.random_data(tuple(spec["input"]), count=16, seed=seed).test_images
    randomize_torch(torch_model, seed)
    weights.torch_to_keras(torch_model, keras_model)
    assert parity.forward_diffs(torch_model, keras_model, images, [])[0] <= parity.FORWARD_TOL
    randomize_keras(keras_model, seed + 1)
    weights.keras_to_torch(keras_model, torch_model)
    assert parity.forward_diffs(torch_model, keras_model, images, [])[0] <= parity.FORWARD_TOL


def test_a_wrong_weight_is_caught(tmp_path):
    package = build_and_import(REPO / "specs" / "lenet5.yaml", tmp_path)
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    images = parity.random_data((28, 28, 1), count=16).test_images
    weights.torch_to_keras(torch_model, keras_model)
    kernel = keras_model.get_layer("conv2").kernel
    kernel.assign(np.swapaxes(kernel.numpy(), 0, 1))  # HWIO read as WHIO: the classic layout slip
    assert parity.forward_diffs(torch_model, keras_model, images, [])[0] > 1e-3


def test_a_model_from_another_spec_is_refused(tmp_path):
    lenet = build_and_import(REPO / "specs" / "lenet5.yaml", tmp_path)
    mlp = build_and_import(REPO / "specs" / "mlp.yaml", tmp_path)
    with pytest.raises(ValueError, match="same spec"):
        weights.torch_to_keras(lenet.build_torch_model(), mlp.build_keras_model())


def test_a_misfit_shape_names_the_layer_and_both_shapes(tmp_path_factory):
    base = {"input": [8, 8, 1], "layers": [{"Flatten": {}}, {"Dense": {"units": 10}}]}
    wide = build_architecture({**base, "name": "fit_a"}, tmp_path_factory.mktemp("a"))
    narrow = build_architecture({**base, "name": "fit_b", "input": [6, 6, 1]}, tmp_path_factory.mktemp("b"))
    with pytest.raises(ValueError, match=r"'fc1'.*\(10, 64\).*\(36, 10\)"):
        weights.torch_to_keras(wide.build_torch_model(), narrow.build_keras_model())
    with pytest.raises(ValueError, match=r"'fc1'.*\(10, 36\).*\(64, 10\)"):
        weights.keras_to_torch(wide.build_keras_model(), narrow.build_torch_model())


def _starting_model(package, script: str, monkeypatch, seed: int):
    """The model a generated training script hands to its loop, data loading and the loop itself stubbed out."""
    module = importlib.import_module(f"{package.__name__}.{script}")
    started = []
    monkeypatch.setattr(module, "load_splits", lambda *_: None)
    monkeypatch.setattr(module.training, "fit", lambda model, *_, **__: started.append(model))
    module.main(["--seed", str(seed), "--run-dir", str(Path(package.__file__).parent / "runs")])
    return started[0]


def test_a_seed_is_one_starting_point_in_both_frameworks(tmp_path, monkeypatch):
    from runtime.keras.init import load_initial_weights as keras_initial_weights
    from runtime.torch.init import load_initial_weights as torch_initial_weights

    package = build_and_import(REPO / "specs" / "lenet5.yaml", tmp_path)
    torch_model = _starting_model(package, "train_torch", monkeypatch, 7)
    keras_model = _starting_model(package, "train_keras", monkeypatch, 7)
    pairs = weights.tensor_pairs(torch_model, keras_model)
    table = [f"{row.layer}.{row.variable}" for row in package.WEIGHTS]
    assert sorted(pair.label for pair in pairs) == sorted(table)
    for pair in pairs:
        assert np.array_equal(weights.torch_array(pair), keras.ops.convert_to_numpy(pair.keras_variable)), pair.label
    again, other = package.build_torch_model(), package.build_keras_model()
    torch_initial_weights(again, package.WEIGHTS, 7)
    keras_initial_weights(other, package.WEIGHTS, 8)
    for mine, theirs in zip(again.state_dict().values(), torch_model.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)  # the scripts start from the helpers' draws
    kernel = next(p for p in weights.tensor_pairs(again, other) if p.torch_tensor.dim() > 1)
    other_draw = keras.ops.convert_to_numpy(kernel.keras_variable)
    assert not np.array_equal(weights.torch_array(kernel), other_draw)  # the seed decides the draw
