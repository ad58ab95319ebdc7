"""The gradient of a train-mode loss on the TensorFlow backend: a GradientTape."""

import tensorflow as tf


def float64_enabled() -> bool:
    return True


def value_and_grad(model, loss, images, labels):
    """See runtime.keras.backends.value_and_grad."""
    with tf.GradientTape() as tape:
        output = model(images, training=True)
        value = loss(labels, output)
    return output, value, tape.gradient(value, model.trainable_variables)
