"""Keras data parallelism: MirroredStrategy on TensorFlow, DataParallel on jax, none on torch, in one process; and
MultiWorkerMirroredStrategy over the processes of a TensorFlow cluster (TF_CONFIG), on one machine or several.

Each replicates the model over N devices (N logical CPU devices, or N host devices on jax, where there is no GPU;
on a cluster, every worker's CPU or GPUs) and splits each global batch into N equal parts; Keras scales each
replica's loss by 1/N and sums the gradients, the mean loss's gradient over the global batch. BatchNorm uses the
global batch's statistics: on TensorFlow through BatchNormalization's `synchronized` (E[x^2] - E[x]^2 over all
replicas), on jax natively, since DataParallel shards one program over the devices and the layer's reductions then
run over the whole batch. On a cluster the chief (TF_CONFIG's chief, else worker 0) alone writes the run folder.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os

from runtime.common import replicas as replica_rules

_NO_REPLICAS = "Keras on the torch backend trains on one device here; use --framework torch for PyTorch replicas"


def split_host_devices() -> None:
    """On jax, one CPU device per core, asked for before anything starts jax (generated scripts import this module
    first): jax reads the flag once, and the precision check lists devices early. One replica uses the first."""
    if backend() == "jax":
        _host_devices(replica_rules.cores())


def backend() -> str:
    """The Keras backend in use (importing keras starts no device)."""
    import keras

    return keras.backend.backend()


def check(replicas: int, batch_size: int) -> None:
    """Refuse a replica count before any device starts: GPUs when there are any, else CPU cores; on a cluster,
    its processes' devices."""
    if cluster_size() > 1:
        message = _cluster_problem(replicas, batch_size)
        if message:
            raise replica_rules.ReplicasError(message)
        return
    if replicas > 1 and backend() == "torch":
        raise replica_rules.ReplicasError(f"--replicas {replicas}: {_NO_REPLICAS}")
    gpus = _gpus()
    replica_rules.check(replicas, batch_size, gpus or None, "GPUs" if gpus else "CPU cores")


def _cluster_problem(replicas: int, batch_size: int) -> str | None:
    """What is wrong with training as one process of TF_CONFIG's cluster, in one line, or None."""
    size = cluster_size()
    if backend() != "tensorflow":
        return f"TF_CONFIG: a cluster of {size} processes trains Keras on TensorFlow only, not on {backend()}"
    if replicas > 1:
        return (
            f"--replicas {replicas}: this process is one of the {size} of TF_CONFIG's cluster, which sets the "
            "replica count; leave --replicas out"
        )
    total = size * max(_gpus(), 1)  # every process replicates over its GPUs, or its CPU as one device
    return replica_rules.problem(total, batch_size, devices=total)


def _tf_config() -> dict:
    """TF_CONFIG, the cluster and this process's task in it; {} when unset."""
    text = os.environ.get("TF_CONFIG", "")
    try:
        config = json.loads(text) if text.strip() else {}
        if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
            raise ValueError("expected an object with a 'cluster' object")
    except ValueError as error:
        raise replica_rules.ReplicasError(f"TF_CONFIG: not a TensorFlow cluster description ({error})") from None
    return config


def cluster_size() -> int:
    """How many processes TF_CONFIG's cluster trains on (its chief and workers); 1 without a cluster."""
    cluster = _tf_config().get("cluster", {})
    return max(len(cluster.get("chief", [])) + len(cluster.get("worker", [])), 1)


def is_chief() -> bool:
    """Whether this process writes the run folder: always, but on a cluster only its chief (TF_CONFIG's chief, or
    worker 0 when it names none), as tf.distribute's own convention has it."""
    if cluster_size() == 1:
        return True
    config = _tf_config()
    task = config.get("task", {})
    if config["cluster"].get("chief"):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def _gpus() -> int:
    if backend() == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if backend() == "jax":
        import jax

        return len([device for device in jax.devices() if device.platform == "gpu"])
    return 0


def scope(replicas: int, batch_size: int):
    """The context to build and compile the model in, for `replicas` replicas (nothing to enter for one).

    Call before anything runs on a device: the CPU is split into logical devices only while none has started, and
    a cluster's processes connect only then.
    """
    if cluster_size() > 1:
        check(replicas, batch_size)
        return _cluster_strategy().scope()
    if replicas == 1:
        return contextlib.nullcontext()
    check(replicas, batch_size)
    if backend() == "jax":
        return _jax_scope(replicas)
    return _tensorflow_strategy(replicas).scope()


def _tensorflow_strategy(replicas: int):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(replicas)])
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    # Reduced on one device: the CPU collectives' default mismatched the synchronized BatchNorm's all-reduces with
    # the gradients' ("shape mismatch in the collective instance"), as they can run in any order per replica.
    reduce = tf.distribute.ReductionToOneDevice("/cpu:0")
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)], cross_device_ops=reduce)


@functools.cache
def _cluster_strategy():
    """The cluster's strategy, created once per process: TensorFlow allows one, made before its runtime starts."""
    from runtime.keras.backends.tensorflow import ClusterStrategy

    return ClusterStrategy()


def _jax_scope(replicas: int):
    """DataParallel set for the whole process: fit shards its batches through it, after the build scope ends."""
    import jax
    import keras

    devices = jax.devices()[:replicas]
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return contextlib.nullcontext()


def _host_devices(replicas_wanted: int) -> None:
    """Ask jax for that many CPU devices; jax reads the flag once, when it starts its CPU backend."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={replicas_wanted}".strip()


def replicas_of(model) -> int:
    """How many replicas train `model`: its tf.distribute strategy's, or the jax DataParallel's devices."""
    import keras

    if backend() == "jax":
        distribution = keras.distribution.distribution()
        return len(distribution.device_mesh.devices.flatten()) if distribution is not None else 1
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.num_replicas_in_sync if strategy is not None else 1


def model_scope(model):
    """The scope `model` was built in, to create or load its variables again (the optimizer's slots on --resume)."""
    strategy = getattr(model, "distribute_strategy", None)
    if backend() != "tensorflow" or strategy is None or strategy.num_replicas_in_sync == 1:
        return contextlib.nullcontext()
    return strategy.scope()


def replicas_in_sync() -> int:
    """Replicas of the tf.distribute strategy whose step is being traced (1 outside one, and off TensorFlow)."""
    if backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def synchronise_batchnorm(model) -> None:
    """Make every BatchNormalization use the global batch's statistics (TensorFlow only needs to be told).

    The flag is read when the train step is traced, so setting it on built layers is enough.
    """
    import keras

    if backend() != "tensorflow":
        return
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


split_host_devices()
