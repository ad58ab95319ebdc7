"""One optimizer step of the PyTorch loop: eager, or on a GPU captured into a CUDA graph and replayed.

Small models at small batches spend most of a step launching kernels one by one from Python. A captured step launches
forward, backward, the optimizer update and the epoch's running totals as one graph. The arithmetic is the same; the
graph holds the learning rate as a constant, so a new rate (a schedule's next epoch) is captured again.
"""

from __future__ import annotations

import torch
from accelerate.utils import DistributedType

from runtime.common.frameworks import guard_triton

guard_triton()  # before anything loads triton lazily (see runtime/common/frameworks.py)

WARMUP_STEPS = 3  # eager steps on a side stream before the first capture, as torch.cuda.graphs asks
PASS_THROUGH = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)


def plain_optimizer(optimizer, accelerator):
    """The torch optimizer inside accelerate's wrapper wherever the wrapper would only call it.

    AcceleratedOptimizer checks for XLA, LOMO and gradient accumulation on every step and zero_grad (measured 0.25 ms
    of a 3 ms MLP step on CPU). It adds work only with a loss scaler (fp16) or another engine (XLA, DeepSpeed, FSDP).
    """
    if accelerator.scaler is None and accelerator.distributed_type in PASS_THROUGH:
        return getattr(optimizer, "optimizer", optimizer)
    return optimizer


def graphs_possible(accelerator) -> bool:
    """CUDA graphs for one CUDA device in float32; anything else steps eagerly."""
    return accelerator.device.type == "cuda" and accelerator.num_processes == 1 and accelerator.mixed_precision == "no"


class TrainStep:
    """Trains on one batch and adds its summed loss and correct count to the epoch's totals (device tensors)."""

    def __init__(self, model, optimizer, loss_fn, accelerator, batch_size: int, use_graph: bool) -> None:
        self.model, self.loss_fn, self.accelerator = model, loss_fn, accelerator
        self.optimizer = plain_optimizer(optimizer, accelerator)
        self.batch_size, self.use_graph = batch_size, use_graph
        self.total_loss = torch.zeros((), device=accelerator.device)
        self.correct = torch.zeros((), device=accelerator.device, dtype=torch.long)
        self.graph, self.graph_lr, self.eager_steps = None, None, 0
        self.static_x = self.static_y = None
        for group in self.optimizer.param_groups if use_graph else ():
            if "capturable" in group:  # Adam refuses graph capture unless capturable, even when fused
                group["capturable"] = True

    def reset_totals(self) -> None:
        self.total_loss.zero_()
        self.correct.zero_()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.use_graph or len(y) != self.batch_size:
            self._eager(x, y)  # a last, smaller batch too: a graph has fixed shapes
        elif self.eager_steps < WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._eager(x, y)
            torch.cuda.current_stream().wait_stream(side)
        else:
            self._replay(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        out = self.model(x)
        loss = self.loss_fn(out.to(torch.promote_types(out.dtype, torch.float32)), y)  # halves up, float64 kept
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.total_loss += loss.detach() * len(y)
        self.correct += (out.argmax(1) == y).sum()

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._step(x, y)
        self.eager_steps += 1

    def _replay(self, x: torch.Tensor, y: torch.Tensor) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        if self.graph is None or lr != self.graph_lr:
            self._capture(x, y, lr)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()

    def _capture(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        """Record one step on static input buffers; recording runs nothing, the replay that follows does."""
        self.graph = None  # frees the previous graph's memory pool first
        self.static_x, self.static_y = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step(self.static_x, self.static_y)
        self.graph, self.graph_lr = graph, lr
