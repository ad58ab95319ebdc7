"""runtime.torch.step: the eager step is the plain loop; the CUDA-graph step trains the same (GPU machines only)."""

import copy

import pytest

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.state import AcceleratorState  # noqa: E402
from torch import nn  # noqa: E402

from runtime.torch import optim as torch_optim  # noqa: E402
from runtime.torch.losses import loss_function as torch_loss  # noqa: E402
from runtime.torch.step import WARMUP_STEPS, TrainStep, graphs_possible, plain_optimizer  # noqa: E402
from tests.recipes import full_optimizer  # noqa: E402

BATCH = 16


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one state per process: an earlier Accelerator(cpu=True) would put later ones on the CPU."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10))


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    sizes = [BATCH] * (count - 1) + [BATCH // 2]  # the last batch is short, as an epoch's last often is
    return [
        (torch.rand(n, 1, 3, 4, generator=generator), torch.randint(0, 10, (n,), generator=generator)) for n in sizes
    ]


def _train(model, batches, optimizer_config: dict, use_graph: bool, device: str, lrs=(0.1,)) -> TrainStep:
    accelerator = Accelerator(cpu=device == "cpu")
    optimizer = torch_optim.from_config(model.parameters(), full_optimizer(optimizer_config))
    step = TrainStep(model, optimizer, torch_loss("logits"), accelerator, BATCH, use_graph)
    for lr in lrs:  # one epoch per rate: the graph must follow a schedule
        for group in optimizer.param_groups:
            group["lr"] = lr
        for x, y in batches:
            step(x.to(device), y.to(device))
    return step


def test_eager_step_is_the_plain_loop_and_sums_the_epoch() -> None:
    batches = _batches(5)
    model, reference = _model(), _model()
    step = _train(model, batches, {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}, False, "cpu")
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    total = 0.0
    for x, y in batches:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(reference(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)
    assert step.total_loss.item() == pytest.approx(total, rel=1e-6)
    assert not graphs_possible(Accelerator(cpu=True))


def test_the_step_skips_accelerates_wrapper_only_where_it_would_pass_calls_through() -> None:
    accelerator = Accelerator(cpu=True)
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1)
    prepared = accelerator.prepare(optimizer)
    assert prepared is not optimizer and plain_optimizer(prepared, accelerator) is optimizer
    accelerator.scaler = torch.amp.GradScaler("cpu")  # fp16: the wrapper unscales and steps through the scaler
    assert plain_optimizer(prepared, accelerator) is prepared


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("optimizer", [{"name": "sgd", "momentum": 0.9, "nesterov": True}, {"name": "adam"}])
def test_cuda_graph_step_trains_as_the_eager_step(optimizer: dict) -> None:
    batches = _batches(WARMUP_STEPS + 4)
    eager_model = _model().cuda()
    graph_model = copy.deepcopy(eager_model)
    eager = _train(eager_model, batches, optimizer, False, "cuda", lrs=(0.1, 0.05))
    graphed = _train(graph_model, batches, optimizer, True, "cuda", lrs=(0.1, 0.05))
    assert graphed.graph is not None and graphed.graph_lr == 0.05  # captured, and captured again for the new rate
    for mine, theirs in zip(graph_model.state_dict().values(), eager_model.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(graphed.total_loss, eager.total_loss, rtol=1e-4, atol=1e-5)
