"""The training loss, one formula per model output kind, spelled for each framework.

- "logits": cross-entropy of softmax(logits);
- "log_probabilities" (a log_softmax output): negative log-likelihood, never a second softmax;
- "probabilities" (a softmax output): -log(clip(p, EPSILON, 1 - EPSILON)), Keras's formula.
Every loss is the mean over the batch of integer labels 0..9.
"""

EPSILON = 1e-7
NUM_CLASSES = 10


def torch_loss(output: str):
    """loss(model_output, labels) for PyTorch."""
    import torch
    import torch.nn.functional as F

    if output == "logits":
        return F.cross_entropy
    if output == "log_probabilities":
        return F.nll_loss
    return lambda probabilities, labels: F.nll_loss(torch.log(probabilities.clamp(EPSILON, 1 - EPSILON)), labels)


def keras_loss(output: str):
    """loss(labels, model_output) for Keras, in keras.ops so every backend computes the same formula."""
    from keras import ops

    def log_probabilities_of(y_pred):
        if output == "logits":
            return ops.log_softmax(y_pred, axis=-1)
        if output == "log_probabilities":
            return y_pred
        return ops.log(ops.clip(y_pred, EPSILON, 1 - EPSILON))

    def loss(y_true, y_pred):
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), NUM_CLASSES, dtype=y_pred.dtype)
        return -ops.mean(ops.sum(labels * log_probabilities_of(y_pred), axis=-1))

    loss.__name__ = f"{output}_cross_entropy"
    return loss
