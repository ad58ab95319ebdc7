"""Data parallelism's one meaning, shared by both frameworks: which images each replica trains on, and the limits.

`batch_size` is the global batch. With N replicas each global batch of runtime.common.data.batch_order is split
contiguously into N equal parts, replica r taking part r. A last global batch whose size N does not divide loses its
last (size mod N) images, fewer than N per epoch: equal parts keep the update the gradient of the mean loss over the
global batch in every framework (DDP averages the replicas' gradients, Keras sums them with each replica's loss
scaled by 1/N). At N = 1 the rule drops nothing, so one replica trains on exactly what it always did.
"""

from __future__ import annotations

import os

import numpy as np


class ReplicasError(ValueError):
    """A replica count that cannot run: below 1, not dividing the batch, or more than the devices or cores."""


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def problem(replicas: int, batch_size: int, devices: int | None = None, kind: str = "CPU cores") -> str | None:
    """What is wrong with training on `replicas` replicas, in one line, or None."""
    devices = cores() if devices is None else devices
    if replicas < 1:
        return f"--replicas: expected at least 1, received {replicas}"
    if batch_size % replicas:
        return f"--replicas: {replicas} does not divide the global batch_size {batch_size} into equal parts"
    if replicas > devices:
        return f"--replicas: {replicas} replicas, but this machine has {devices} {kind}"
    return None


def check(replicas: int, batch_size: int, devices: int | None = None, kind: str = "CPU cores") -> None:
    """Raise ReplicasError for a replica count `problem` refuses."""
    message = problem(replicas, batch_size, devices, kind)
    if message:
        raise ReplicasError(message)


def launched() -> int:
    """The process count an outside launcher (torchrun, accelerate launch) started this process as one of; 1 when
    none did. Such a launcher sets WORLD_SIZE and RANK for each process, as the PyTorch loop's own forks have."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_first_launched() -> bool:
    """Whether this process is rank 0 of an outside launcher's processes (or was not launched by one)."""
    return os.environ.get("RANK", "0") == "0"


def launcher_problem(replicas: int, batch_size: int) -> str | None:
    """What is wrong with the replicas of an outside launcher, in one line, or None (also without one): --replicas
    beside it (the launcher sets the count), or a world size that does not divide the global batch. The launcher,
    not this machine's cores, decides where its processes run."""
    world_size = launched()
    if world_size == 1:
        return None
    if replicas > 1:
        return (
            f"--replicas {replicas}: this process was launched as one of {world_size} (WORLD_SIZE); the launcher "
            "sets the replica count, so leave --replicas out"
        )
    return problem(world_size, batch_size, devices=world_size)


def check_launcher(replicas: int, batch_size: int) -> None:
    """Raise ReplicasError for an outside launcher's replicas that `launcher_problem` refuses."""
    message = launcher_problem(replicas, batch_size)
    if message:
        raise ReplicasError(message)


def trim(batches: list[np.ndarray], replicas: int) -> list[np.ndarray]:
    """The epoch's global batches with the last cut to a multiple of `replicas` (dropped if that leaves nothing)."""
    if not batches or len(batches[-1]) % replicas == 0:
        return batches
    last = batches[-1][: len(batches[-1]) - len(batches[-1]) % replicas]
    return [*batches[:-1], last] if len(last) else batches[:-1]


def trained_count(samples: int, batch_size: int, replicas: int) -> int:
    """How many images an epoch trains on: all but the last batch's remainder modulo `replicas`."""
    return samples - (samples % batch_size) % replicas


def share(batch: np.ndarray, rank: int, replicas: int) -> np.ndarray:
    """Replica `rank`'s contiguous part of a global batch that `replicas` divides."""
    size = len(batch) // replicas
    return batch[rank * size : (rank + 1) * size]
