"""The Keras optimizers follow torch.optim's formulas to rounding, on a toy quadratic in float64."""

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from runtime.interop.parity import keras_precision  # noqa: E402
from runtime.keras import optim as keras_optim  # noqa: E402
from runtime.torch import optim as torch_optim  # noqa: E402
from tests.recipes import full_optimizer  # noqa: E402

CONFIGS = {  # partial spec sections; the DSL fills in the rest
    "sgd": full_optimizer({"name": "sgd", "learning_rate": 0.05}),
    "momentum": full_optimizer({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}),
    "nesterov": full_optimizer({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    "sgd-decay": full_optimizer({"name": "sgd", "learning_rate": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
    "adam": full_optimizer({"name": "adam", "learning_rate": 0.02}),
    "adam-decay": full_optimizer(
        {"name": "adam", "learning_rate": 0.02, "beta_1": 0.8, "epsilon": 1e-3, "weight_decay": 0.1}
    ),
}


def quadratic(seed: int = 0):
    """A, b and a start point of f(p) = p.A.p / 2 - b.p, whose gradient is A p - b."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(6, 6))
    return m @ m.T / 6 + np.eye(6), rng.normal(size=6), rng.normal(size=6)


def run_both(config: dict, steps: int = 50, new_lr_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Final points of torch.optim and the Keras optimizer from the same start, same gradients."""
    a, b, start = quadratic()
    param = torch.tensor(start, requires_grad=True)
    torch_opt = torch_optim.from_config([param], config)
    variable = keras.Variable(start, dtype="float64")
    with keras_precision("float64"):
        keras_opt = keras_optim.from_config(config)
    for step in range(steps):
        if step == new_lr_at:  # what a schedule or callback does between steps
            torch_opt.param_groups[0]["lr"] = 0.003
            keras_opt.learning_rate = 0.003
        param.grad = torch.from_numpy(a @ param.detach().numpy() - b)
        torch_opt.step()
        keras_opt.apply_gradients([(keras.ops.convert_to_tensor(a @ variable.numpy() - b), variable)])
    return param.detach().numpy(), variable.numpy()


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_torch_optim(config):
    expected, got = run_both(config)
    assert np.max(np.abs(expected - quadratic()[2])) > 0.1  # the point moved: the check can fail
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["nesterov", "adam"])
def test_learning_rate_changes_are_followed(name):
    expected, got = run_both(CONFIGS[name], new_lr_at=20)
    unchanged, _ = run_both(CONFIGS[name])
    assert np.max(np.abs(expected - unchanged)) > 1e-6
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_weight_decay_is_l2_not_decoupled():
    optimizer = keras_optim.from_config(CONFIGS["sgd-decay"])
    assert optimizer.weight_decay is None  # the base class's decoupled decay stays off
    assert optimizer.get_config()["weight_decay"] == 0.1


@pytest.mark.parametrize("name", ["nesterov", "adam-decay"])
def test_config_round_trips_and_model_saves(name, tmp_path):
    optimizer = keras_optim.from_config(CONFIGS[name])
    config = optimizer.get_config()
    assert type(optimizer).from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    model.save(tmp_path / "x.keras")
    loaded = keras.models.load_model(tmp_path / "x.keras")
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.get_config() == config


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="rmsprop"):
        keras_optim.from_config({"name": "rmsprop"})
    with pytest.raises(ValueError, match="rmsprop"):
        torch_optim.from_config([torch.zeros(1, requires_grad=True)], {"name": "rmsprop"})
