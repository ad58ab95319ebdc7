"""PyTorch data parallelism: N processes started by the training command itself, and BatchNorm over the global batch.

The processes are forks of the one that parses the command, so they share its model, data and run folder without
pickling anything; each then joins a process group (gloo on CPU, NCCL on GPUs) through accelerate, which wraps the
model in DistributedDataParallel (gradients averaged). nn.SyncBatchNorm runs on CUDA only, so GlobalBatchNorm
all-reduces the sum, the sum of squares and the count itself, through an all-reduce that autograd differentiates.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable
from multiprocessing.connection import wait

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from runtime.common import replicas as replica_rules
from runtime.torch.layers import BiasedVarBatchNorm1d, BiasedVarBatchNorm2d, _BiasedVarBatchNorm


class _GlobalBatchNorm(_BiasedVarBatchNorm):
    """BiasedVarBatchNorm normalising in training with the global batch's statistics, over every replica.

    Variance is E[x^2] - E[x]^2 over all replicas, floored at 0, as Keras's synchronized BatchNorm computes it: one
    all-reduce, where a two-pass variance would need two. Evaluation uses the moving statistics, as before.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        self._check_input_dim(x)
        channels, axes = x.shape[1], [0, *range(2, x.dim())]
        count = torch.full((1,), x.numel() / channels, dtype=x.dtype, device=x.device)
        total = funcol.all_reduce(torch.cat([x.sum(axes), (x * x).sum(axes), count]), "sum", dist.group.WORLD)
        mean = total[:channels] / total[-1]
        var = (total[channels:-1] / total[-1] - mean * mean).clamp_min(0)
        with torch.no_grad():  # Keras's moving variance: the biased one
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps) * self.weight
        return (x - mean.view(shape)) * scale.view(shape) + self.bias.view(shape)


class GlobalBatchNorm1d(_GlobalBatchNorm, BiasedVarBatchNorm1d):
    """BiasedVarBatchNorm1d over the global batch."""


class GlobalBatchNorm2d(_GlobalBatchNorm, BiasedVarBatchNorm2d):
    """BiasedVarBatchNorm2d over the global batch."""


GLOBAL = {BiasedVarBatchNorm1d: GlobalBatchNorm1d, BiasedVarBatchNorm2d: GlobalBatchNorm2d}


def global_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with each BiasedVarBatchNorm turned into its global twin, in place.

    The layer changes class and keeps its very parameters and buffers: an optimizer built on the model still holds
    them, and the state dict's keys stay those of the generated model.
    """
    for module in model.modules():
        if type(module) in GLOBAL:
            module.__class__ = GLOBAL[type(module)]
    return model


def summed(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over the replicas (itself in one process)."""
    if dist.is_initialized():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def check(replicas: int, batch_size: int) -> None:
    """Refuse a replica count before any process starts: replicas run on GPUs when there are any, else on cores."""
    gpus = torch.cuda.device_count()
    replica_rules.check(replicas, batch_size, gpus or None, "GPUs" if gpus else "CPU cores")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(rank: int, replicas: int, port: int) -> dict[str, str]:
    """What accelerate reads to join replica `rank` to the group (torchrun sets the same)."""
    env = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": replicas, "LOCAL_WORLD_SIZE": replicas}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    if not torch.cuda.device_count():
        env["ACCELERATE_USE_CPU"] = "true"
    return {key: str(value) for key, value in env.items()}


def _child(work: Callable[[], object], env: dict[str, str], errors) -> None:
    """One replica: join the group, run `work`, send back an exception that ends it (the parent re-raises it)."""
    os.environ.update(env)
    # One thread per replica: the replicas are the parallelism, and OpenMP's pool hangs in a fork asked for more.
    torch.set_num_threads(1)
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(True)  # the fork's copy of the parent's process-wide state, if it made one
    PartialState._reset_state()
    try:
        work()
    except BaseException as error:  # noqa: BLE001 - every way out goes back to the parent, which raises it
        errors.put((int(env["RANK"]), error))
        os._exit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    os._exit(0)


def launch(work: Callable[[], object], replicas: int) -> None:
    """Run `work` in `replicas` forked processes joined in one group; re-raise the first replica's exception."""
    context = multiprocessing.get_context("fork")
    errors, port = context.SimpleQueue(), _free_port()
    processes = [
        context.Process(target=_child, args=(work, _environment(rank, replicas, port), errors))
        for rank in range(replicas)
    ]
    for process in processes:
        process.start()
    try:
        _join(processes)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    if failures:
        raise min(failures, key=lambda failure: failure[0])[1]
    if any(process.exitcode for process in processes):
        codes = [process.exitcode for process in processes]
        raise RuntimeError(f"a replica ended without a result (exit codes {codes})")


def _join(processes) -> None:
    """Wait for every replica; once one fails the others would wait forever in a collective, so stop them."""
    running = {process.sentinel: process for process in processes}
    while running:
        for sentinel in wait(list(running)):
            if running.pop(sentinel).exitcode:
                return
