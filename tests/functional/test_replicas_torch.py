"""PyTorch data parallelism: 2 processes over gloo train the same float64 model as 1, step for step.

Each global batch is split into 2 contiguous halves, DDP averages the halves' gradients and GlobalBatchNorm
normalises with the whole batch's statistics; with dropout off, losses, weights and moving statistics match one
process to 1e-10. A per-replica BatchNorm (DDP's default) is shown to fail the same check.
"""

import os
import subprocess
import sys
from pathlib import Path

from runtime.common.frameworks import guard_triton

guard_triton()
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.state import AcceleratorState, PartialState  # noqa: E402

from runtime.common import replicas as replica_rules  # noqa: E402
from runtime.common.rundir import read_json  # noqa: E402
from runtime.torch import distributed, init, optim, training  # noqa: E402
from runtime.torch.losses import loss_function  # noqa: E402
from runtime.torch.step import TrainStep  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.functional.test_replicas import BATCH, COUNT, EPOCHS, OPTIMIZERS, TOLERANCE, build_replicated  # noqa: E402
from tests.functional.test_replicas import splits as _splits  # noqa: E402
from tests.recipes import full_optimizer, make_recipe  # noqa: E402


def _model(package, planted: bool, parallel: bool):
    model = package.build_torch_model().double()
    init.load_initial_weights(model, package.WEIGHTS, 0)
    return distributed.global_batchnorm(model) if parallel and not planted else model


def _steps(package, optimizer: dict, out: Path, planted: bool = False) -> None:
    """Train EPOCHS epochs of batch_order's batches on this process's share; save its per-step losses and state."""
    AcceleratorState._reset_state(True)
    PartialState._reset_state()
    accelerator = Accelerator()
    model = _model(package, planted, accelerator.num_processes > 1)
    model, torch_optimizer = accelerator.prepare(model, optim.from_config(model.parameters(), optimizer))
    losses, loss = [], loss_function(package.OUTPUT)

    def recorded(output, labels):
        value = loss(output, labels)
        losses.append(value.item())
        return value

    step = TrainStep(model, torch_optimizer, recorded, accelerator, BATCH, use_graph=False)
    splits, recipe = _splits(), make_recipe(optimizer, batch_size=BATCH, epochs=EPOCHS, seed=1)
    data = training._Data(splits.x_train, splits.y_train, accelerator.device)
    for epoch in range(EPOCHS):
        training._train_epoch(step, data, recipe, epoch, progress=False)
    state = {key: value.numpy() for key, value in accelerator.unwrap_model(model).state_dict().items()}
    torch.save({"losses": losses, "state": state}, out / f"rank{accelerator.process_index}.pt")


def _trajectory(package, optimizer: dict, out: Path, count: int, planted: bool = False) -> dict:
    """Per-step global-batch losses (the mean of the replicas' equal halves) and rank 0's final state."""
    out.mkdir()
    if count == 1:
        _steps(package, optimizer, out, planted)
    else:
        distributed.launch(lambda: _steps(package, optimizer, out, planted), count)
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(count)]
    return {"losses": np.mean([rank["losses"] for rank in ranks], axis=0), "state": ranks[0]["state"]}


def assert_same_trajectory(one: dict, two: dict) -> None:
    """Losses at every step, weights and BatchNorm moving statistics within TOLERANCE of the tensor's scale.

    A tensor near 0 is measured against 1e-3 instead of its own size.
    """
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=TOLERANCE, atol=0)
    assert one["state"].keys() == two["state"].keys()
    for key, expected in one["state"].items():
        scale = TOLERANCE * max(np.abs(expected).max(), 1e-3)
        np.testing.assert_allclose(two["state"][key], expected, rtol=TOLERANCE, atol=scale, err_msg=key)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build_replicated(tmp_path_factory.mktemp("replicated"))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_two_replicas_train_the_one_replica_model(package, name, tmp_path):
    optimizer = full_optimizer(OPTIMIZERS[name])
    one = _trajectory(package, optimizer, tmp_path / "one", 1)
    two = _trajectory(package, optimizer, tmp_path / "two", 2)
    assert len(one["losses"]) == EPOCHS * COUNT // BATCH
    assert_same_trajectory(one, two)
    assert two["state"]["bn1.num_batches_tracked"] == EPOCHS * COUNT // BATCH


def test_per_replica_batchnorm_fails_the_check(package, tmp_path):
    optimizer = full_optimizer(OPTIMIZERS["sgd-nesterov"])
    one = _trajectory(package, optimizer, tmp_path / "one", 1)
    planted = _trajectory(package, optimizer, tmp_path / "planted", 2, planted=True)
    with pytest.raises(AssertionError):
        assert_same_trajectory(one, planted)


def _fit(package, run_dir: Path, count: int, epochs: int, resume: bool = False, model=None) -> dict:
    model = model or _model(package, planted=False, parallel=False)
    recipe = make_recipe(OPTIMIZERS["adam"], batch_size=BATCH, epochs=epochs, seed=1, validation_split=0.0)
    optimizer = optim.from_config(model.parameters(), recipe.optimizer)
    loss = loss_function(package.OUTPUT)
    return training.fit(
        model, optimizer, loss, _splits(36), recipe, run_dir, resume=resume, progress=False, replicas=count
    )


def test_fit_with_two_replicas_writes_one_run_and_resumes(package, tmp_path):
    # 36 images: the last global batch of 4 splits into 2 + 2; at 3 replicas it would lose 1 image.
    one = _fit(package, tmp_path / "one", 1, epochs=2)
    _fit(package, tmp_path / "two", 2, epochs=1)
    caller_model = _model(package, planted=False, parallel=False)
    two = _fit(package, tmp_path / "two", 2, epochs=2, resume=True, model=caller_model)
    assert sorted(path.name for path in (tmp_path / "two").iterdir()) == sorted(
        path.name for path in (tmp_path / "one").iterdir()
    )
    assert two["test_accuracy"] == one["test_accuracy"]
    np.testing.assert_allclose(two["test_loss"], one["test_loss"], rtol=TOLERANCE)
    histories = [read_json(tmp_path / name / "history.json") for name in ("one", "two")]
    assert [row["train_loss"] for row in histories[1]] == pytest.approx(
        [row["train_loss"] for row in histories[0]], rel=TOLERANCE
    )
    weights = [torch.load(tmp_path / name / "model.pt", weights_only=True) for name in ("one", "two")]
    for key, expected in weights[0].items():
        np.testing.assert_allclose(weights[1][key], expected, rtol=TOLERANCE, atol=TOLERANCE, err_msg=key)
    # The caller's model object holds the replicas' trained weights, not the initial ones it passed in.
    for key, trained in caller_model.state_dict().items():
        assert torch.equal(trained, weights[1][key]), key


def test_fit_under_an_outside_launcher_checks_its_world_size(package, tmp_path, monkeypatch):
    """training.fit called directly (not through a script's options) refuses a launcher's count that does not divide
    the global batch, before it writes anything."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(replica_rules.ReplicasError, match=f"3 does not divide the global batch_size {BATCH}"):
        _fit(package, tmp_path / "run", 1, epochs=1)
    assert not (tmp_path / "run").exists()


@pytest.mark.needs_data
def test_torchrun_runs_the_generated_script_as_the_replicas_of_its_own_flag(tmp_path):
    """An outside launcher's 2 processes train what the script's own --replicas 2 trains, to the bit, and the first
    of them writes the one run folder."""
    script = ["-m", "generated.mlp.train_torch", "--epochs", "1", "--train-limit", "512"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    own = [sys.executable, *script, "--replicas", "2", "--run-dir", str(tmp_path / "own")]
    launched = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *script]
    launched += ["--run-dir", str(tmp_path / "launched")]
    for command in (own, launched):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    own_run, launched_run = tmp_path / "own" / "torch", tmp_path / "launched" / "torch"
    assert sorted(p.name for p in launched_run.iterdir()) == sorted(p.name for p in own_run.iterdir())
    assert (
        read_json(launched_run / "history.json")[0]["train_loss"]
        == read_json(own_run / "history.json")[0]["train_loss"]
    )
    assert read_json(launched_run / "metrics.json") == read_json(own_run / "metrics.json")
