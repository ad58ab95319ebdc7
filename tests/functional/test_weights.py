"""Weight transfer between the generated PyTorch and Keras models, over random architectures."""

import itertools
from pathlib import Path

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from compilers.project import build_and_import  # noqa: E402
from dsl import SpecError, parse_spec  # noqa: E402
from runtime.interop import parity, weights  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
_names = itertools.count()
ACTIVATIONS = ["none", "relu", "tanh", "sigmoid", "elu", "gelu"]
pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))

conv = st.fixed_dictionaries(
    {"filters": st.integers(1, 4), "kernel_size": pairs, "padding": st.sampled_from(["valid", "same"])},
    optional={"strides": pairs, "activation": st.sampled_from(ACTIVATIONS), "use_bias": st.booleans()},
).map(lambda args: {"Conv2D": args})
pool = st.fixed_dictionaries(
    {"pool_size": pairs, "padding": st.sampled_from(["valid", "same"])}, optional={"strides": pairs}
).map(lambda args: {"MaxPool": args})
batchnorm = st.fixed_dictionaries(
    {}, optional={"momentum": st.sampled_from([0.5, 0.9, 0.99]), "epsilon": st.sampled_from([1e-3, 1e-5, 0.1])}
).map(lambda args: {"BatchNorm": args})
dropout = st.sampled_from([0.0, 0.3, 0.5]).map(lambda rate: {"Dropout": {"rate": rate}})
activation = st.sampled_from([*ACTIVATIONS[1:], "softmax", "log_softmax"]).map(lambda f: {"Activation": f})
dense = st.fixed_dictionaries(
    {"units": st.integers(1, 12)},
    optional={"activation": st.sampled_from(ACTIVATIONS), "use_bias": st.booleans()},
).map(lambda args: {"Dense": args})
head = st.sampled_from(["none", "softmax", "log_softmax"]).map(lambda f: {"Dense": {"units": 10, "activation": f}})


@st.composite
def architectures(draw) -> dict:
    """A random valid spec: conv section, Flatten, dense section, a 10-way head; every layer kind can appear."""
    spatial = draw(st.lists(st.one_of(conv, pool, batchnorm, dropout, activation), max_size=4))
    flat = draw(st.lists(st.one_of(dense, batchnorm, dropout, activation), max_size=3))
    size = draw(st.tuples(st.integers(6, 10), st.integers(6, 10), st.integers(1, 2)))
    layers = [*spatial, {"Flatten": {}}, *flat, draw(head)]
    return {"name": f"arch{next(_names)}", "input": list(size), "layers": layers}


def build(spec: dict, folder: Path):
    """The generated package of `spec`, built under `folder` and imported; rejects specs with impossible shapes."""
    text = yaml.safe_dump(spec, sort_keys=False)
    try:
        parse_spec(text)
    except SpecError:
        assume(False)
    spec_file = folder / f"{spec['name']}.yaml"
    spec_file.write_text(text)
    return build_and_import(spec_file, folder / "out")


def build_spec_file(path: Path, folder: Path):
    """A checked-in spec's package, built under `folder`."""
    return build_and_import(path, folder)


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
@given(spec=architectures(), seed=st.integers(0, 2**16))
def test_round_trip_gives_identical_weights(spec, seed, tmp_path_factory):
    package = build(spec, tmp_path_factory.mktemp("round"))
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
@given(spec=architectures(), seed=st.integers(0, 2**16))
def test_forward_parity_after_transfer_both_directions(spec, seed, tmp_path_factory):
    package = build(spec, tmp_path_factory.mktemp("forward"))
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    images = parity.random_data(tuple(spec["input"]), count=16, seed=seed).test_images
    randomize_torch(torch_model, seed)
    weights.torch_to_keras(torch_model, keras_model)
    assert parity.forward_diffs(torch_model, keras_model, images, [])[0] <= parity.FORWARD_TOL
    randomize_keras(keras_model, seed + 1)
    weights.keras_to_torch(keras_model, torch_model)
    assert parity.forward_diffs(torch_model, keras_model, images, [])[0] <= parity.FORWARD_TOL


def test_a_wrong_weight_is_caught(tmp_path):
    package = build_spec_file(REPO / "specs" / "lenet5.yaml", tmp_path)
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    images = parity.random_data((28, 28, 1), count=16).test_images
    weights.torch_to_keras(torch_model, keras_model)
    kernel = keras_model.get_layer("conv2").kernel
    kernel.assign(np.swapaxes(kernel.numpy(), 0, 1))  # HWIO read as WHIO: the classic layout slip
    assert parity.forward_diffs(torch_model, keras_model, images, [])[0] > 1e-3


def test_a_model_from_another_spec_is_refused(tmp_path):
    lenet = build_spec_file(REPO / "specs" / "lenet5.yaml", tmp_path)
    mlp = build_spec_file(REPO / "specs" / "mlp.yaml", tmp_path)
    with pytest.raises(ValueError, match="same spec"):
        weights.torch_to_keras(lenet.build_torch_model(), mlp.build_keras_model())


def test_a_misfit_shape_names_the_layer_and_both_shapes(tmp_path_factory):
    base = {"input": [8, 8, 1], "layers": [{"Flatten": {}}, {"Dense": {"units": 10}}]}
    wide = build({**base, "name": "fit_a"}, tmp_path_factory.mktemp("a"))
    narrow = build({**base, "name": "fit_b", "input": [6, 6, 1]}, tmp_path_factory.mktemp("b"))
    with pytest.raises(ValueError, match=r"'fc1'.*\(10, 64\).*\(36, 10\)"):
        weights.torch_to_keras(wide.build_torch_model(), narrow.build_keras_model())
    with pytest.raises(ValueError, match=r"'fc1'.*\(10, 36\).*\(64, 10\)"):
        weights.keras_to_torch(wide.build_keras_model(), narrow.build_torch_model())


def test_a_seed_is_one_starting_point_in_both_frameworks(tmp_path):
    import keras

    package = build_spec_file(REPO / "specs" / "lenet5.yaml", tmp_path)
    torch_model = package.build_torch_model()
    weights.start_from_keras_init(torch_model, package.build_keras_model, 7)
    keras.utils.set_random_seed(7)  # what train_keras.py does before building its model
    keras_model = package.build_keras_model()
    for pair in weights.tensor_pairs(torch_model, keras_model):
        assert np.array_equal(weights.torch_array(pair.torch_tensor), pair.keras_variable.numpy()), pair.label
    keras.utils.set_random_seed(8)
    other = package.build_keras_model().get_weights()
    assert not np.array_equal(other[0], keras_model.get_weights()[0])  # the seed decides the draw
