"""The training loss of each model output kind, in keras.ops so that every backend computes the same formula.

The same formulas as runtime/torch/losses.py: cross-entropy of logits, the NLL of log-probabilities, and
-log(clip(p, LOSS_EPSILON, 1 - LOSS_EPSILON)) of probabilities; the mean over the batch of integer labels.
"""

from keras import ops

from runtime.common.constants import LOSS_EPSILON, NUM_CLASSES
from runtime.keras import distributed


def loss_function(output: str):
    """loss(labels, model_output) for a model whose output is of kind `output`."""

    def log_probabilities_of(y_pred):
        if output == "logits":
            return ops.log_softmax(y_pred, axis=-1)
        if output == "log_probabilities":
            return y_pred
        return ops.log(ops.clip(y_pred, LOSS_EPSILON, 1 - LOSS_EPSILON))

    def loss(y_true, y_pred):
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), NUM_CLASSES, dtype=y_pred.dtype)
        mean = -ops.mean(ops.sum(labels * log_probabilities_of(y_pred), axis=-1))
        # Under tf.distribute each replica's part is its sum over the global batch: Keras sums the replicas'
        # gradients and skips its own 1/replicas scaling for a loss that is already a scalar.
        replicas = distributed.replicas_in_sync()
        return mean if replicas == 1 else mean / replicas

    loss.__name__ = f"{output}_cross_entropy"
    return loss
