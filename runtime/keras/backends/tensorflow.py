"""The TensorFlow backend's own code: the gradient of a train-mode loss (a GradientTape), float64 GELU, the first
device, and the strategy of a TensorFlow cluster."""

import math
from contextlib import contextmanager

import tensorflow as tf


def float64_patches() -> list:
    """TensorFlow's float64 exact GELU is accurate to about 5e-9 (against scipy's erf), which a trajectory grows past
    1e-10; while parity measures, the same formula from tf.math.erf (accurate to 4e-16) stands in for it.
    """
    from keras.src.backend.tensorflow import nn

    kernel = nn.gelu

    def gelu(x, approximate=True):
        x = tf.convert_to_tensor(x)
        if approximate or x.dtype != tf.float64:
            return kernel(x, approximate)
        return 0.5 * x * (1.0 + tf.math.erf(x / tf.constant(math.sqrt(2.0), tf.float64)))

    return [(nn, "gelu", gelu)]


def first_device() -> str:
    """See runtime.keras.backends.first_device."""
    return "gpu:0" if tf.config.list_physical_devices("GPU") else "cpu:0"


def tf32_available() -> bool:
    """See runtime.keras.backends.tf32_available: TensorFlow's first GPU, of compute capability >= 8.0."""
    gpus = tf.config.list_physical_devices("GPU")
    return bool(gpus) and tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0)) >= (8, 0)


@contextmanager
def float32_dots(tf32: bool):
    """See runtime.keras.backends.float32_dots: TensorFlow's process-wide TF32 switch (on by default)."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def float64_enabled() -> bool:
    return True


def value_and_grad(model, loss, images, labels):
    """See runtime.keras.backends.value_and_grad."""
    with tf.GradientTape() as tape:
        output = model(images, training=True)
        value = loss(labels, output)
    return output, value, tape.gradient(value, model.trainable_variables)


class ClusterStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy over TF_CONFIG's cluster, with the reduce Keras's trainer expects of a strategy.

    Keras 3's TensorFlow trainer hands the multi-worker strategy two things its reduce refuses (keras-team/keras#20585):
    the first batch, an (images, labels) pair, to build the model's state, and each step's scalar metrics with
    axis=0. Each value of a structure is reduced on its own, and a scalar across the replicas only.
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(one):
            scalar = self.experimental_local_results(one)[0].shape.rank == 0
            return super(ClusterStrategy, self).reduce(reduce_op, one, None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)
