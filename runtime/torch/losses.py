"""The training loss of each model output kind, for PyTorch (the formulas: runtime/keras/losses.py, docs/semantics.md).

- "logits": cross-entropy of softmax(logits);
- "log_probabilities" (a log_softmax output): negative log-likelihood, never a second softmax;
- "probabilities" (a softmax output): -log(clip(p, LOSS_EPSILON, 1 - LOSS_EPSILON)), Keras's formula.
Every loss is the mean over the batch of integer labels.
"""

import torch
import torch.nn.functional as F

from runtime.common.constants import LOSS_EPSILON


def loss_function(output: str):
    """loss(model_output, labels) for a model whose output is of kind `output`."""
    if output == "logits":
        return F.cross_entropy
    if output == "log_probabilities":
        return F.nll_loss
    return lambda probabilities, labels: F.nll_loss(
        torch.log(probabilities.clamp(LOSS_EPSILON, 1 - LOSS_EPSILON)), labels
    )
